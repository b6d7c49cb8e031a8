// Whether this build's kernels hold code a device can run. The kernels are
// compiled for SYNTHPERT_CUDA_ARCHS (sm_80 and sm_90a by default) as cubins
// only: an sm_80 cubin runs on compute capability 8.x, the sm_90a one on 9.0,
// and every other device (7.x, 10.x, 12.x) has no image to load. Launching
// there fails; asking first lets the engine run torch's ops instead.
#pragma once

namespace synthpert::kernels {

// True when the kernels' code loads on `device` (a CUDA device ordinal).
// Leaves the current device and the runtime's last error as they were.
bool device_has_kernel_image(int device);

}  // namespace synthpert::kernels
