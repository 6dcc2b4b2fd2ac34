// The C++ side of the C API (engine/converge.h): handles for objects built
// in C++, so a C caller can use a Kernel (such as sim::EmulatedKernel) or a
// DirtySource that only C++ can construct.

#ifndef CONVERGE_ENGINE_CONVERGE_CPP_H_
#define CONVERGE_ENGINE_CONVERGE_CPP_H_

#include "engine/converge.h"
#include "iommu/dirty_source.h"
#include "iommu/kernel.h"

// A handle borrowing kernel (it must outlive every engine and destination
// made with the handle). Free with converge_kernel_destroy().
converge_kernel* converge_kernel_wrap(converge::Kernel& kernel);

// A handle borrowing source (it must outlive the engines it is added to).
// Free with converge_source_destroy() (the source itself is not freed).
converge_source* converge_source_wrap(converge::DirtySource* source);

#endif  // CONVERGE_ENGINE_CONVERGE_CPP_H_
