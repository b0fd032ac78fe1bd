# The guest workloads, one file run by busybox sh in two places: natively on
# the host by the i386 busybox-static binary, and inside the Debian guest as
# the fixture's bt86.cmd= command. Identical text on both sides is what makes
# the native column comparable with the guest columns.
#
# run_workloads.py prepends the parameters:
#   BB=<busybox binary> TRUE=<path of the true applet> WORK=<scratch dir>
#   SIZE=<bytes of the data file> FORKS=<n> SYSCALLS=<n> KMSG=<1 in a guest>
# and strips comment lines and indentation before encoding, because the
# kernel command line holds 2047 bytes (the base64 of this text must fit).
#
# Timing: `stamp` reads CLOCK_REALTIME with microseconds through the adjtimex
# applet (busybox date has no %N). It costs one fork+exec per stamp and is
# parsed with shell builtins only, so a measured interval contains the
# workload plus one fork+exec, the same sequence on every runner. Guest times
# come from the guest's own clock, so boot time cannot leak into them.
#
# Output lines (parsed by run_workloads.py):
#   bt86-wl-data <bytes> <sha256 of the data file>
#   bt86-wl-begin <name>                      (right after the start stamp)
#   bt86-wl-end <name> <sec0> <usec0> <sec1> <usec1>   (right after the end)
#   bt86-wl-result <name> <result>
# The host notes when the begin and end lines arrive, an interval that
# matches the stamped one without trusting the guest's clock. <result> is
# what proves the work was done right (a checksum, a count); the runner
# refuses to time a workload whose result differs from native. `e` takes the
# command that computes it as text and runs it after the end line, so
# checking the work is never part of either interval.
stamp() {
  set -- $(adjtimex)
  while [ $# -gt 0 ]; do
    case $1 in
      time.tv_sec:) s=$2 ;;
      time.tv_usec:) u=$2 ;;
    esac
    shift
  done
}
b() {
  stamp
  s0=$s u0=$u
  echo "bt86-wl-begin $1"
}
e() {
  stamp
  echo "bt86-wl-end $1 $s0 $u0 $s $u"
  echo "bt86-wl-result $1 $(eval "$2")"
}
cd $WORK || exit 1
[ $KMSG = 1 ] && echo "<2>bt86-boot-marker" >/dev/kmsg
# A mix of machine code and decimal text, like real files: the busybox
# binary (the same bytes on both sides) and seq output, cut to SIZE.
{ for i in 1 2 3 4 5 6 7 8 9; do cat $BB; seq $i 9 999999; done; } | head -c $SIZE >d
echo "bt86-wl-data $(wc -c <d) $(sha256sum <d)"
b gzip9
gzip -9 -c d >o
e gzip9 'sha256sum <o'
b bzip29
bzip2 -9 -c d >o
e bzip29 'sha256sum <o'
b sha256
sha256sum <d >o
e sha256 'cat o'
b fork
i=0
while [ $i -lt $FORKS ]; do
  $TRUE
  i=$((i + 1))
done
e fork 'echo $i'
b syscall
dd if=/dev/zero of=/dev/null bs=1 count=$SYSCALLS 2>o
e syscall "head -n 2 o | tr '\\n' ' '"
rm -f d o
