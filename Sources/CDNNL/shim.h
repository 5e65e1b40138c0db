#ifndef ALEXNET_CDNNL_SHIM_H
#define ALEXNET_CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

// Debian's oneDNN threads with GCC's OpenMP runtime; these two calls are all we need of it
// (declared here because omp.h lives in GCC's private include folder).
extern void omp_set_num_threads(int);
extern int omp_get_max_threads(void);
#endif
