#include "alexnet_mpi.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

int alexnet_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

int alexnet_mpi_init(int *rank, int *size, int *local_rank, int *local_size) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, rank)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_size(MPI_COMM_WORLD, size)) != MPI_SUCCESS) return rc;
    MPI_Comm local;
    if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &local)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_rank(local, local_rank)) != MPI_SUCCESS) return rc;
    if ((rc = MPI_Comm_size(local, local_size)) != MPI_SUCCESS) return rc;
    return MPI_Comm_free(&local);
}

int alexnet_mpi_finalize(void) { return MPI_Finalize(); }

void alexnet_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void alexnet_mpi_error_string(int code, char *buffer, int length) {
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (length <= 0) return;
    if (MPI_Error_string(code, text, &n) != MPI_SUCCESS) n = 0;
    text[n < MPI_MAX_ERROR_STRING ? n : MPI_MAX_ERROR_STRING - 1] = 0;
    strncpy(buffer, n > 0 ? text : "unknown MPI error", (size_t)length - 1);
    buffer[length - 1] = 0;
}

// MPI_Request is a pointer in Open MPI and an int in MPICH: it lives in a heap cell either way,
// which alexnet_mpi_test frees when the operation completes.
static MPI_Request *new_cell(void) { return malloc(sizeof(MPI_Request)); }

static int started(int rc, MPI_Request *cell, void **request) {
    if (rc != MPI_SUCCESS) { free(cell); return rc; }
    *request = cell;
    return MPI_SUCCESS;
}

int alexnet_mpi_iallreduce_sum_floats(float *data, int count, void **request) {
    MPI_Request *cell = new_cell();
    if (cell == NULL) return MPI_ERR_NO_MEM;
    return started(MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, cell), cell, request);
}

int alexnet_mpi_iallreduce_sum_doubles(double *data, int count, void **request) {
    MPI_Request *cell = new_cell();
    if (cell == NULL) return MPI_ERR_NO_MEM;
    return started(MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, cell), cell, request);
}

int alexnet_mpi_ibroadcast_floats(float *data, int count, int root, void **request) {
    MPI_Request *cell = new_cell();
    if (cell == NULL) return MPI_ERR_NO_MEM;
    return started(MPI_Ibcast(data, count, MPI_FLOAT, root, MPI_COMM_WORLD, cell), cell, request);
}

// bfloat16 numbers (uint16 bits) summed in float32 and rounded to the nearest even, as the
// kernels round: MPI has no bfloat16 type, so the sum is a user operation on MPI_UINT16_T.
static void sum_bfloat16(void *in, void *inout, int *count, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *count; i++) {
        union { uint32_t u; float f; } x = {.u = (uint32_t)a[i] << 16}, y = {.u = (uint32_t)b[i] << 16}, s;
        s.f = x.f + y.f;
        if ((s.u & 0x7fffffffu) > 0x7f800000u) b[i] = (uint16_t)((s.u >> 16) | 0x40u);
        else b[i] = (uint16_t)((s.u + 0x7fffu + ((s.u >> 16) & 1u)) >> 16);
    }
}

int alexnet_mpi_iallreduce_sum_bfloat16(uint16_t *data, int count, void **request) {
    static MPI_Op op = MPI_OP_NULL;
    if (op == MPI_OP_NULL) {
        int rc = MPI_Op_create(sum_bfloat16, 1, &op);
        if (rc != MPI_SUCCESS) return rc;
    }
    MPI_Request *cell = new_cell();
    if (cell == NULL) return MPI_ERR_NO_MEM;
    return started(MPI_Iallreduce(MPI_IN_PLACE, data, count, MPI_UINT16_T, op, MPI_COMM_WORLD, cell), cell, request);
}

int alexnet_mpi_ibroadcast_bfloat16(uint16_t *data, int count, int root, void **request) {
    MPI_Request *cell = new_cell();
    if (cell == NULL) return MPI_ERR_NO_MEM;
    return started(MPI_Ibcast(data, count, MPI_UINT16_T, root, MPI_COMM_WORLD, cell), cell, request);
}

int alexnet_mpi_test(void *request, int *done) {
    MPI_Request *cell = request;
    int rc = MPI_Test(cell, done, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && *done) free(cell);
    return rc;
}
