/* CRC-32 (IEEE 802.3, reflected) over the input buffer with a 256-entry
   table built on the stack: a table-lookup loop, the shape of checksum code
   in real guests. */
#include "kernel_abi.h"

KERNEL_ENTRY;

void kernel_main(volatile struct kernel_params* p) {
  unsigned int table[256];
  for (unsigned int i = 0; i < 256; ++i) {
    unsigned int c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  const unsigned char* in = (const unsigned char*)p->input;
  const unsigned int n = p->length;
  unsigned int crc = 0xFFFFFFFFu;
  for (unsigned int i = 0; i < n; ++i) crc = table[(crc ^ in[i]) & 0xFF] ^ (crc >> 8);
  p->result[0] = crc ^ 0xFFFFFFFFu;
}
