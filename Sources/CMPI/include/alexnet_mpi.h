// The few MPI calls distributed training needs, as plain C functions: Swift cannot import Open
// MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM are macros over casts of global symbols),
// so this target includes <mpi.h> and Swift sees only these. Every function returns MPI's error
// code (MPI_SUCCESS = 0): MPI_COMM_WORLD is set to return errors instead of aborting, so the
// caller can name the failing call and the rank before it ends the job (alexnet_mpi_abort).
#ifndef ALEXNET_MPI_H
#define ALEXNET_MPI_H

#include <stddef.h>
#include <stdint.h>

// 1 when mpirun (or another Open MPI / PMIx launcher) started this process.
int alexnet_mpi_launched(void);

// MPI_Init_thread (funneled: only the main thread calls MPI) and this process's place: rank and
// size in MPI_COMM_WORLD, rank and size among the ranks on the same machine (a shared-memory split).
int alexnet_mpi_init(int *rank, int *size, int *local_rank, int *local_size);
int alexnet_mpi_finalize(void);
// Ends every rank of the job (MPI_Abort on MPI_COMM_WORLD).
void alexnet_mpi_abort(int code);
// MPI_Error_string into buffer (NUL-terminated).
void alexnet_mpi_error_string(int code, char *buffer, int length);

// Collectives on MPI_COMM_WORLD, in place, started without waiting: *request receives a handle
// for alexnet_mpi_test, which frees it once the operation is complete.
int alexnet_mpi_iallreduce_sum_floats(float *data, int count, void **request);
int alexnet_mpi_iallreduce_sum_doubles(double *data, int count, void **request);
int alexnet_mpi_ibroadcast_floats(float *data, int count, int root, void **request);
// The same for bfloat16 numbers (their uint16 bits): summed in float32, rounded to nearest even.
int alexnet_mpi_iallreduce_sum_bfloat16(uint16_t *data, int count, void **request);
int alexnet_mpi_ibroadcast_bfloat16(uint16_t *data, int count, int root, void **request);
// *done = 1 when the operation is complete (its handle is then freed), 0 otherwise.
int alexnet_mpi_test(void *request, int *done);

#endif
