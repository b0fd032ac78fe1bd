#!/bin/sh
# Runs a command with stdin from /dev/null and checks its exit status and
# that its output matches an extended regular expression.
#   expect_exit.sh STATUS REGEX COMMAND...
expected=$1
pattern=$2
shift 2
output=$("$@" 2>&1 </dev/null)
status=$?
printf '%s\n' "$output"
if [ "$status" -ne "$expected" ]; then
  echo "expect_exit: exit status $status, expected $expected" >&2
  exit 1
fi
if ! printf '%s\n' "$output" | grep -Eq -- "$pattern"; then
  echo "expect_exit: output does not match '$pattern'" >&2
  exit 1
fi
