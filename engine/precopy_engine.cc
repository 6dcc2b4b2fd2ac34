#include "engine/precopy_engine.h"

#include <cassert>
#include <utility>

namespace converge {
namespace {
Status Unimplemented() {
  return NotSupportedError("PrecopyEngine: not implemented yet");
}
}  // namespace

std::string_view EnginePhaseName(EnginePhase phase) {
  switch (phase) {
    case EnginePhase::kConfiguring: return "configuring";
    case EnginePhase::kPrecopy: return "precopy";
    case EnginePhase::kSwitchover: return "switchover";
    case EnginePhase::kCompleted: return "completed";
    case EnginePhase::kCancelled: return "cancelled";
    case EnginePhase::kFailed: return "failed";
  }
  return "invalid";
}

class PrecopyEngine::Rep {};

Result<std::unique_ptr<PrecopyEngine>> PrecopyEngine::Create(
    Kernel&, Clock&, Transport&, EngineOptions) {
  return Unimplemented();
}
PrecopyEngine::PrecopyEngine(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
PrecopyEngine::~PrecopyEngine() = default;
Status PrecopyEngine::AddRegion(const GuestRegion&) { return Unimplemented(); }
Status PrecopyEngine::AddSource(DirtySource*, SourceKind) {
  return Unimplemented();
}
Result<uint32_t> PrecopyEngine::AddDevice(std::string, int) {
  return Unimplemented();
}
Status PrecopyEngine::Start() { return Unimplemented(); }
Result<SyncStats> PrecopyEngine::Sync() { return Unimplemented(); }
Estimate PrecopyEngine::CurrentEstimate() const { return Estimate(); }
Result<IterationStats> PrecopyEngine::Iterate() { return Unimplemented(); }
SwitchoverDecision PrecopyEngine::ShouldSwitchover() { return {}; }
Result<SwitchoverStats> PrecopyEngine::Switchover(const SwitchoverHooks&) {
  return Unimplemented();
}
void PrecopyEngine::RecordDestinationApply(uint64_t) {}
Status PrecopyEngine::Cancel() { return Unimplemented(); }
EnginePhase PrecopyEngine::phase() const { return EnginePhase::kConfiguring; }
uint64_t PrecopyEngine::iterations() const { return 0; }
uint64_t PrecopyEngine::measured_fixed_cost_ns(FixedCost) const { return 0; }
const DeviceSession& PrecopyEngine::device(uint32_t) const {
  assert(false);
  __builtin_unreachable();
}
size_t PrecopyEngine::num_devices() const { return 0; }

}  // namespace converge
