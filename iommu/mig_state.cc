#include "iommu/mig_state.h"

namespace converge {

std::string_view MigStateName(MigState state) {
  static constexpr std::string_view kNames[kNumMigStates] = {
      "ERROR",    "STOP",        "RUNNING",  "STOP_COPY",
      "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P"};
  const auto index = static_cast<uint32_t>(state);
  return index < kNumMigStates ? kNames[index] : "INVALID";
}

}  // namespace converge
