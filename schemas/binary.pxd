# C types for the compiled module (refledger/compiled.py): an index into the message is a C integer.
# Values and lengths stay Python integers: a varint's bits are gathered past 64 before its range is
# checked, and a length near 2**63 must still be refused as running past the message.
cimport cython

cpdef tuple read_long(bytes b, Py_ssize_t i)
cpdef tuple read_int(bytes b, Py_ssize_t i)

@cython.locals(start=Py_ssize_t, x=int)  # end: a Python integer, a length may be near 2**63
cpdef tuple read_bytes(bytes b, Py_ssize_t i)

@cython.locals(end=Py_ssize_t, x=int)
cpdef tuple read_string(bytes b, Py_ssize_t i)
