#ifndef ALEXNET_CTURBOJPEG_SHIM_H
#define ALEXNET_CTURBOJPEG_SHIM_H
// libjpeg-turbo's TurboJPEG C API (Debian's libturbojpeg0-dev).
#include <turbojpeg.h>
#endif
