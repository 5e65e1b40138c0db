// Open MPI's C API (Debian's libopenmpi-dev; its pkg-config file ompi-c gives the include
// folder). Only the CMPI target uses it directly: Swift cannot import MPI's handle macros.
#include <mpi.h>
