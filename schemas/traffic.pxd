# Types for the compiled module (refledger/compiled.py): an index into the message is a C integer.
# The source, as Python, is the same code.
cimport cython

cpdef tuple _signature(bytes b, Py_ssize_t i)

@cython.locals(i=Py_ssize_t, kind=int)
cpdef tuple read_traffic_fields(bytes data, bytes current_fingerprint)

@cython.locals(i=Py_ssize_t, kind=int)
cpdef dict read_purchase(bytes data, bytes current_fingerprint)
