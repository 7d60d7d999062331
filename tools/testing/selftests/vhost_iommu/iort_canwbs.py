#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Patch QEMU's ACPI IORT so that every PCI root complex node says CANWBS.

QEMU advertises neither SMMU S2FWB nor CANWBS, and arm-smmu-v3 only lets
iommufd allocate a vIOMMU when one of them holds. The kernel upgrades ACPI
tables from the initrd (CONFIG_ACPI_TABLE_UPGRADE) when the OEM revision is
higher, so set bit 2 of each root complex's memory access flags, bump the
OEM revision and fix the checksum.

usage: iort_canwbs.py IN OUT
"""
import struct
import sys

IORT_NODE_PCI_ROOT_COMPLEX = 2
MEM_ACCESS_FLAGS = 16 + 4 + 1 + 2   # node header, cache coherency, hints, reserved
CANWBS = 1 << 2


def main():
    data = bytearray(open(sys.argv[1], 'rb').read())
    if data[0:4] != b'IORT':
        sys.exit('not an IORT table')
    length = struct.unpack_from('<I', data, 4)[0]
    if length != len(data):
        sys.exit(f'length {length} != file size {len(data)}')
    count, offset = struct.unpack_from('<II', data, 36)
    patched = 0
    for _ in range(count):
        ntype, nlen = data[offset], struct.unpack_from('<H', data, offset + 1)[0]
        if nlen < 16 or offset + nlen > length:
            sys.exit(f'bad node at {offset}')
        if ntype == IORT_NODE_PCI_ROOT_COMPLEX:
            at = offset + MEM_ACCESS_FLAGS
            print(f'root complex node @{offset}: memory access flags @{at} '
                  f'0x{data[at]:02x} -> 0x{data[at] | CANWBS:02x}', file=sys.stderr)
            data[at] |= CANWBS
            patched += 1
        offset += nlen
    if not patched:
        sys.exit('no root complex node')
    oem_rev = struct.unpack_from('<I', data, 24)[0]
    struct.pack_into('<I', data, 24, oem_rev + 1)
    data[9] = 0
    data[9] = (-sum(data)) & 0xff
    assert sum(data) & 0xff == 0
    open(sys.argv[2], 'wb').write(data)
    print(f'IORT: {patched} root complex(es) marked CANWBS, OEM revision {oem_rev} -> {oem_rev + 1}',
          file=sys.stderr)


if __name__ == '__main__':
    main()
