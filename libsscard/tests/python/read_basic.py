"""A second caller of libsscard.so: Python's ctypes, as counter programs written in Python load vendor DLLs.

    python3 read_basic.py LIBRARY read_basic ITYPE
    python3 read_basic.py LIBRARY read_card ITYPE CARDINFO FILEADDR

Each call prints "code N" and "out " followed by the output's bytes (GBK), as tests/c/read_basic.c does.
Arguments are taken as the bytes given (GBK on the command line).
"""
import ctypes
import os
import sys


def report(code, buf):
    sys.stdout.buffer.write(b"code %d\nout " % code + buf.value + b"\n")


def main():
    argv = [os.fsencode(a) for a in sys.argv]
    lib = ctypes.CDLL(os.fsdecode(argv[1]))
    lib.iReadCardBas.argtypes = [ctypes.c_int, ctypes.c_char_p]
    lib.iReadCardBas.restype = ctypes.c_long
    lib.iReadCard.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.iReadCard.restype = ctypes.c_long
    command = argv[2]
    if command == b"read_basic" and len(argv) == 4:
        buf = ctypes.create_string_buffer(1024)
        report(lib.iReadCardBas(int(argv[3]), buf), buf)
    elif command == b"read_card" and len(argv) == 6:
        buf = ctypes.create_string_buffer(1024 * 20)
        report(lib.iReadCard(int(argv[3]), 0, argv[4], argv[5], buf), buf)
    else:
        sys.exit("usage: read_basic.py LIBRARY read_basic ITYPE | read_card ITYPE CARDINFO FILEADDR")


main()
