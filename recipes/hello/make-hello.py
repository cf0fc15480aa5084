#!/usr/bin/env python3
"""Writes `hello`, a tiny static x86-64 Linux ELF used by the example recipe and the tests.

The binary is hand-assembled so the repository needs no toolchain, libc or base image to
produce a runnable container: it prints "Hello from strata!", then each argument on its own
line, and exits 0. Rerunning this script rewrites the same bytes (the file is checked in;
this script is how it was made and how to check it was not altered).

    python3 recipes/hello/make-hello.py [OUTPUT]   # default: hello beside this script
"""

import os
import struct
import sys

BASE = 0x400000  # load address of the single PT_LOAD segment
EHDR_SIZE = 64
PHDR_SIZE = 56
MESSAGE = b"Hello from strata!\n"

SYS_WRITE = 1
SYS_EXIT = 60


def u32(value):
    return struct.pack("<I", value)


def assemble(items):
    """Two-pass assembly of byte strings, labels and short jumps.

    items: bytes (emitted as is), ("label", name), ("jmp8", opcode, name) for a rel8 jump,
    ("rip32", prefix, name) for an instruction ending in a RIP-relative disp32 to a label.
    Returns (code, labels) with label offsets relative to the start of the code.
    """

    def size(item):
        if isinstance(item, bytes):
            return len(item)
        if item[0] == "label":
            return 0
        if item[0] == "jmp8":
            return 2
        if item[0] == "rip32":
            return len(item[1]) + 4
        raise ValueError(item)

    labels, offset = {}, 0
    for item in items:
        if not isinstance(item, bytes) and item[0] == "label":
            labels[item[1]] = offset
        offset += size(item)

    code, offset = bytearray(), 0
    for item in items:
        offset += size(item)  # jumps and RIP addressing are relative to the next instruction
        if isinstance(item, bytes):
            code += item
        elif item[0] == "jmp8":
            rel = labels[item[2]] - offset
            if not -128 <= rel <= 127:
                raise ValueError(f"jump to {item[2]} out of rel8 range")
            code += bytes([item[1]]) + struct.pack("<b", rel)
        elif item[0] == "rip32":
            code += item[1] + struct.pack("<i", labels[item[2]] - offset)
    return bytes(code), labels


PROGRAM = [
    # write(1, message, len(message))
    b"\xb8" + u32(SYS_WRITE),            # mov eax, 1
    b"\xbf" + u32(1),                    # mov edi, 1
    ("rip32", b"\x48\x8d\x35", "message"),  # lea rsi, [rip+message]
    b"\xba" + u32(len(MESSAGE)),         # mov edx, len
    b"\x0f\x05",                         # syscall
    # r12 = &argv[1]; at entry [rsp] = argc, [rsp+8] = argv[0], ... NULL
    b"\x4c\x8d\x64\x24\x10",             # lea r12, [rsp+16]
    ("label", "next_arg"),
    b"\x49\x8b\x34\x24",                 # mov rsi, [r12]
    b"\x48\x85\xf6",                     # test rsi, rsi
    ("jmp8", 0x74, "done"),              # jz done
    b"\x31\xd2",                         # xor edx, edx
    ("label", "strlen"),
    b"\x80\x3c\x16\x00",                 # cmp byte [rsi+rdx], 0
    ("jmp8", 0x74, "found_end"),         # je found_end
    b"\x48\xff\xc2",                     # inc rdx
    ("jmp8", 0xEB, "strlen"),            # jmp strlen
    ("label", "found_end"),
    # The argument strings live on our own writable stack: turn the NUL into "\n" and
    # write the argument and its newline in one call.
    b"\xc6\x04\x16\x0a",                 # mov byte [rsi+rdx], 10
    b"\x48\xff\xc2",                     # inc rdx
    b"\xb8" + u32(SYS_WRITE),            # mov eax, 1
    b"\xbf" + u32(1),                    # mov edi, 1
    b"\x0f\x05",                         # syscall
    b"\x49\x83\xc4\x08",                 # add r12, 8
    ("jmp8", 0xEB, "next_arg"),          # jmp next_arg
    ("label", "done"),
    b"\xb8" + u32(SYS_EXIT),             # mov eax, 60
    b"\x31\xff",                         # xor edi, edi
    b"\x0f\x05",                         # syscall
    ("label", "message"),
    MESSAGE,
]


def build():
    code, _ = assemble(PROGRAM)
    entry_offset = EHDR_SIZE + PHDR_SIZE
    total = entry_offset + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, SysV
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,                   # e_type: ET_EXEC
        0x3E,                # e_machine: x86-64
        1,                   # e_version
        BASE + entry_offset, # e_entry
        EHDR_SIZE,           # e_phoff
        0,                   # e_shoff: no section headers
        0,                   # e_flags
        EHDR_SIZE,
        PHDR_SIZE,
        1,                   # e_phnum
        0, 0, 0,             # no sections
    )
    phdr = struct.pack(
        "<IIQQQQQQ",
        1,        # PT_LOAD
        5,        # PF_R | PF_X
        0,        # p_offset: map the whole file, headers included
        BASE,     # p_vaddr
        BASE,     # p_paddr
        total,    # p_filesz
        total,    # p_memsz
        0x1000,   # p_align
    )
    assert len(ehdr) == EHDR_SIZE and len(phdr) == PHDR_SIZE
    return ehdr + phdr + code


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "hello")
    data = build()
    with open(out, "wb") as f:
        f.write(data)
    os.chmod(out, 0o755)
    print(f"wrote {out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
