#include "engine/destination.h"

#include <cassert>
#include <utility>

namespace converge {
namespace {
Status Unimplemented() {
  return NotSupportedError("Destination: not implemented yet");
}
}  // namespace

class Destination::Rep {};

Result<std::unique_ptr<Destination>> Destination::Create(
    Kernel&, Clock&, Transport&, DestinationOptions) {
  return Unimplemented();
}
Destination::Destination(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
Destination::~Destination() = default;
Status Destination::AddRegion(const GuestRegion&) { return Unimplemented(); }
Result<uint32_t> Destination::AddDevice(std::string, int) {
  return Unimplemented();
}
Status Destination::Prepare() { return Unimplemented(); }
Result<DestinationResult> Destination::Run() { return Unimplemented(); }
const DeviceSession& Destination::device(uint32_t) const {
  assert(false);
  __builtin_unreachable();
}
size_t Destination::num_devices() const { return 0; }

}  // namespace converge
