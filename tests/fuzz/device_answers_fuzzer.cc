// libFuzzer target: the engine's handling of what VFIO devices answer.
//
// A fake Kernel models up to three migration devices. Every answer it gives
// can be bent by the fuzz input: the MIGRATION flags and feature probes,
// GET read-backs of the device state (raw values outside the enum; a device
// may also fall into ERROR on its own), SETs that fail part-way (any arc,
// any errno, into ERROR or not) or return a data_fd where none was due (or
// none where one was), PRECOPY_INFO and MIG_DATA_SIZE values (the full u64 range), and
// data_fd reads (any length, EOF, any errno, EINTR). DeviceSession,
// MigrationDevice, MoveDevicesToStop, DataFdReader and the Estimator are
// driven by a program in the same input.
//
// Invariants (a violation aborts with a message):
//  - the two arcs that hang the kernel (STOP_COPY -> PRE_COPY and
//    STOP_COPY -> PRE_COPY_P2P) are never requested, nor ERROR, nor a value
//    outside the enum;
//  - no data_fd leaks, is closed twice, or is used after it was closed;
//  - every failure is a Status with a message;
//  - a transition that succeeds leaves the device where it was asked, with
//    a data_fd exactly in the saving and resuming states; a failed
//    MoveDevicesToStop leaves every device RUNNING or says which did not
//    get there, and one that succeeds quiesced every P2P device before
//    stopping any;
//  - DataFdReader hands out what was read, in sequence, and ends only in
//    STOP_COPY;
//  - estimates are finite (nothing in Estimate is documented as infinite),
//    never NaN, sums do not wrap, the throttle stays in 0-99 %.
//
// Input (read front to back; missing bytes read as 0, and 0 is always the
// benign answer):
//   byte 0        device count - 1 (mod 3)
//   bytes 1-3     per device: bit 1 P2P, bit 2 PRE_COPY, bit 3 drops the
//                 mandatory STOP_COPY, bit 4 adds an unknown flag
//   byte 4        bit 0 / bit 1: recovery without return-to-RUNNING / reset
//   then records  op, arg, answer length n, n answer bytes. The fake Kernel
//                 answers the op's calls from those bytes (0 when used up).
//
// Seeds: CONVERGE_WRITE_SEEDS=<dir> ./device_answers_fuzzer writes the seed
// corpus (tests/fuzz/corpus/device_answers_fuzzer/) and exits.

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/device_session.h"
#include "engine/estimator.h"
#include "engine/migration_fsm.h"
#include "io/data_fd_reader.h"
#include "iommu/kernel.h"
#include "iommu/uapi_compat.h"

namespace converge {
namespace {

[[noreturn]] void Violated(const char* what, const std::string& detail) {
  std::fprintf(stderr, "device_answers_fuzzer: %s: %s\n", what,
               detail.c_str());
  std::abort();
}
#define FUZZ_CHECK(cond, detail) \
  do {                           \
    if (!(cond)) Violated(#cond, detail); \
  } while (0)

void CheckError(const Status& s, const char* call) {
  FUZZ_CHECK(s.ok() || !s.message().empty(), call);
}

// Bytes read front to back; 0 once exhausted.
class Bytes {
 public:
  explicit Bytes(std::span<const uint8_t> data) : data_(data) {}
  uint8_t U8() { return pos_ < data_.size() ? data_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(U8()) << (8 * i);
    return v;
  }
  uint32_t U32() { return uint32_t(U64()); }
  std::span<const uint8_t> Take(size_t n) {
    n = std::min(n, data_.size() - pos_);
    std::span<const uint8_t> out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  bool empty() const { return pos_ >= data_.size(); }

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

constexpr int kErrnos[] = {EIO, ENODEV, EINVAL, ENOTTY, EAGAIN, ENOMSG,
                           EINTR, ENOMEM, EFAULT, EBUSY, EPERM, ETIMEDOUT};
int ErrnoFrom(uint8_t b) { return kErrnos[b % std::size(kErrnos)]; }

constexpr int kFirstDeviceFd = 100;
constexpr int kFirstDataFd = 1000;

struct FakeDevice {
  uint64_t flags = 0;
  MigState state = MigState::kRunning;
  uint64_t pending_bytes = 0;    // benign model: what a read returns
  uint64_t stop_copy_bytes = 0;
};

// The kernel side of the devices; answers come from the current op's
// bytes (set_answers()).
class FakeKernel final : public Kernel {
 public:
  std::vector<FakeDevice> devices;
  std::map<int, size_t> data_fds;  // open data_fd -> device index
  // SETs of the current op: device index and target.
  std::vector<std::pair<size_t, MigState>> sets;

  void set_answers(std::span<const uint8_t> answers) { answers_ = Bytes(answers); }
  FakeDevice& Device(int fd) { return devices[size_t(fd - kFirstDeviceFd)]; }

 protected:
  Result<int> DoOpen(const std::string&, int) override {
    return ErrnoStatus(ENOENT, "open");
  }
  Status DoClose(int fd) override {
    FUZZ_CHECK(data_fds.erase(fd) == 1,
               "close of fd " + std::to_string(fd) + " that is not open");
    return OkStatus();
  }
  Result<void*> DoMmap(size_t, int, int, int, off_t) override {
    return ErrnoStatus(ENODEV, "mmap");
  }
  Status DoMunmap(void*, size_t) override { return ErrnoStatus(EINVAL, "munmap"); }
  Result<size_t> DoWrite(int, const void*, size_t) override {
    return ErrnoStatus(EBADF, "write");
  }

  Result<int> DoIoctl(int fd, unsigned long request, void* arg) override {
    if (request == VFIO_MIG_GET_PRECOPY_INFO) return PrecopyInfoIoctl(fd, arg);
    const bool device_fd =
        fd >= kFirstDeviceFd && fd < kFirstDeviceFd + int(devices.size());
    FUZZ_CHECK(device_fd, "device ioctl on fd " + std::to_string(fd));
    FakeDevice& d = Device(fd);
    if (request == VFIO_DEVICE_RESET) {
      const uint8_t mode = answers_.U8();
      if (mode % 4 == 1) return ErrnoStatus(ErrnoFrom(answers_.U8()), "reset");
      d.state = mode % 4 == 2 ? MigState::kError : MigState::kRunning;
      return 0;
    }
    FUZZ_CHECK(request == VFIO_DEVICE_FEATURE, "unexpected ioctl request");
    vfio_device_feature header;
    std::memcpy(&header, arg, sizeof header);
    auto* payload = static_cast<unsigned char*>(arg) + sizeof header;
    const uint32_t feature = header.flags & VFIO_DEVICE_FEATURE_MASK;
    const uint32_t op = header.flags & ~VFIO_DEVICE_FEATURE_MASK;
    const uint8_t mode = answers_.U8();
    if (mode % 8 == 1) return ErrnoStatus(ErrnoFrom(answers_.U8()), "feature");
    if (op & VFIO_DEVICE_FEATURE_PROBE) {
      FUZZ_CHECK(header.argsz == sizeof header, "PROBE argsz");
      if (mode % 8 == 2) return ErrnoStatus(ENOTTY, "probe");
      return 0;
    }
    switch (feature) {
      case VFIO_DEVICE_FEATURE_MIGRATION: {
        FUZZ_CHECK(op == VFIO_DEVICE_FEATURE_GET, "SET of MIGRATION");
        FUZZ_CHECK(header.argsz == sizeof header + 8, "MIGRATION argsz");
        const uint64_t flags = mode % 8 == 2 ? answers_.U64() : d.flags;
        std::memcpy(payload, &flags, sizeof flags);
        return 0;
      }
      case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: {
        FUZZ_CHECK(op == VFIO_DEVICE_FEATURE_GET, "SET of MIG_DATA_SIZE");
        FUZZ_CHECK(header.argsz == sizeof header + 8, "MIG_DATA_SIZE argsz");
        const uint64_t size = mode % 8 == 2 ? answers_.U64() : d.stop_copy_bytes;
        std::memcpy(payload, &size, sizeof size);
        return 0;
      }
      case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
        vfio_device_feature_mig_state mig;
        FUZZ_CHECK(header.argsz == sizeof header + sizeof mig,
                   "MIG_DEVICE_STATE argsz");
        std::memcpy(&mig, payload, sizeof mig);
        Result<int> r = op == VFIO_DEVICE_FEATURE_GET ? GetState(d, mode, mig)
                                                      : SetState(fd, d, mode, mig);
        if (r.ok()) std::memcpy(payload, &mig, sizeof mig);
        return r;
      }
      default:
        return ErrnoStatus(ENOTTY, "feature");
    }
  }

  Result<size_t> DoRead(int fd, void* buf, size_t length) override {
    auto it = data_fds.find(fd);
    FUZZ_CHECK(it != data_fds.end(), "read of a data_fd that is not open");
    FakeDevice& d = devices[it->second];
    const uint8_t mode = answers_.U8();
    if (mode % 4 == 1) return ErrnoStatus(ErrnoFrom(answers_.U8()), "read");
    size_t n = std::min<uint64_t>(length, d.pending_bytes);
    if (mode % 4 == 2) n = size_t(answers_.U64() % (length + 1));
    if (mode % 4 == 3) n = 0;
    std::memset(buf, 0x5a, n);
    d.pending_bytes -= std::min<uint64_t>(n, d.pending_bytes);
    return n;
  }

 private:
  Result<int> GetState(FakeDevice& d, uint8_t mode,
                       vfio_device_feature_mig_state& mig) {
    if (mode % 8 == 3) d.state = MigState::kError;  // fell into ERROR
    mig.device_state = uint32_t(d.state);
    // A raw value outside the enum (the device state itself is unchanged).
    if (mode % 8 == 2) mig.device_state = answers_.U32() | kNumMigStates;
    return 0;
  }

  Result<int> SetState(int fd, FakeDevice& d, uint8_t mode,
                       vfio_device_feature_mig_state& mig) {
    const uint32_t raw = mig.device_state;
    FUZZ_CHECK(raw < kNumMigStates, "SET of raw state " + std::to_string(raw));
    const MigState target = MigState(raw);
    const std::string arc = std::string(MigStateName(d.state)) + " -> " +
                            std::string(MigStateName(target));
    FUZZ_CHECK(target != MigState::kError, "ERROR requested: " + arc);
    FUZZ_CHECK(!IsRefusedArc(d.state, target), "hanging arc requested: " + arc);
    sets.push_back({size_t(fd - kFirstDeviceFd), target});
    Result<std::vector<MigState>> path = PlanPath(d.state, target, d.flags);
    if (!path.ok() || path->empty()) return ErrnoStatus(EINVAL, "set");
    if (mode % 8 == 2) {  // fails at some arc, maybe into ERROR
      const size_t fail_at = answers_.U8() % path->size();
      const int error = ErrnoFrom(answers_.U8());
      const bool into_error = answers_.U8() & 1;
      if (fail_at > 0) d.state = (*path)[fail_at - 1];
      if (into_error) d.state = MigState::kError;
      return ErrnoStatus(error, "set");
    }
    bool opens = false;
    MigState at = d.state;
    for (MigState next : *path) {
      opens = opens || ArcOpensDataFd(at, next);
      if (ArcOpensDataFd(at, next) && IsSavingState(next)) {
        d.pending_bytes = d.stop_copy_bytes + 3 * 4096;
      }
      if (at == MigState::kPreCopy || at == MigState::kPreCopyP2p) {
        if (next == MigState::kStopCopy) d.pending_bytes += d.stop_copy_bytes;
      }
      at = next;
    }
    d.state = target;
    if (mode % 8 == 3) opens = !opens;  // a driver bug in the fd it returns
    mig.data_fd = -1;
    if (opens) {
      mig.data_fd = next_data_fd_++;
      data_fds[mig.data_fd] = size_t(fd - kFirstDeviceFd);
    }
    return 0;
  }

  Result<int> PrecopyInfoIoctl(int fd, void* arg) {
    auto it = data_fds.find(fd);
    FUZZ_CHECK(it != data_fds.end(), "PRECOPY_INFO on a data_fd not open");
    auto* info = static_cast<vfio_precopy_info*>(arg);
    FUZZ_CHECK(info->argsz >= sizeof *info, "PRECOPY_INFO argsz");
    const FakeDevice& d = devices[it->second];
    if (d.state != MigState::kPreCopy && d.state != MigState::kPreCopyP2p) {
      return ErrnoStatus(EINVAL, "precopy info");
    }
    const uint8_t mode = answers_.U8();
    if (mode % 4 == 1) return ErrnoStatus(ErrnoFrom(answers_.U8()), "precopy");
    info->flags = 0;
    info->initial_bytes = d.pending_bytes / 2;
    info->dirty_bytes = d.pending_bytes - info->initial_bytes;
    if (mode % 4 == 2) {
      info->initial_bytes = answers_.U64();
      info->dirty_bytes = answers_.U64();
      info->flags = answers_.U32();
    }
    return 0;
  }

  Bytes answers_{{}};
  int next_data_fd_ = kFirstDataFd;
};

void CheckFinite(double v, const char* field) {
  FUZZ_CHECK(std::isfinite(v), std::string(field) + " = " + std::to_string(v));
}

void CheckEstimate(const Estimate& e) {
  CheckFinite(e.bandwidth_bps, "bandwidth_bps");
  CheckFinite(e.dirty_rate_bps, "dirty_rate_bps");
  CheckFinite(e.fixed_costs_ms, "fixed_costs_ms");
  CheckFinite(e.dirtied_during_stop_bytes, "dirtied_during_stop_bytes");
  CheckFinite(e.predicted_downtime_ms, "predicted_downtime_ms");
  CheckFinite(e.qemu_expected_downtime_ms, "qemu_expected_downtime_ms");
  CheckFinite(e.lambda, "lambda");
  CheckFinite(e.pending_ratio, "pending_ratio");
  CheckFinite(e.smallest_reachable_limit_ms, "smallest_reachable_limit_ms");
  if (e.time_to_go_ms) CheckFinite(*e.time_to_go_ms, "time_to_go_ms");
  if (e.throttle_percent) {
    CheckFinite(*e.throttle_percent, "throttle_percent");
    FUZZ_CHECK(*e.throttle_percent >= 0 && *e.throttle_percent <= 99,
               "throttle " + std::to_string(*e.throttle_percent));
  }
  for (const SourceEstimate& s : e.sources) {
    CheckFinite(s.dirty_rate_bps, "source dirty_rate_bps");
  }
  for (const DeviceEstimate& d : e.devices) {
    for (uint64_t part : {d.initial_bytes, d.dirty_bytes, d.stop_copy_bytes}) {
      FUZZ_CHECK(e.device_pending_bytes >= part,
                 "device_pending_bytes wrapped: " + e.Summary());
    }
  }
  FUZZ_CHECK(e.pending_bytes >= e.ram_pending_bytes &&
                 e.pending_bytes >= e.device_pending_bytes,
             "pending_bytes wrapped: " + e.Summary());
}

bool IsSessionless(MigState s) {
  return s == MigState::kRunning || s == MigState::kStop ||
         s == MigState::kRunningP2p;
}

// One device as the engine sees it.
struct Slot {
  std::unique_ptr<DeviceSession> session;
  std::unique_ptr<DataFdReader> reader;
  int reader_fd = -1;
  uint64_t next_sequence = 0;
  DeviceSample sample;  // the device's last answers, for the estimator
};

class Harness {
 public:
  Harness(FakeKernel& kernel, DeviceSession::Options options,
          Estimator::Options estimator_options)
      : kernel_(kernel), options_(options), estimator_(estimator_options),
        slots_(kernel.devices.size()) {
    estimator_.AddSource("guest", kTrackedPages, /*guest=*/true);
    for (size_t i = 0; i < slots_.size(); ++i) estimator_.AddDevice(Name(i));
  }

  ~Harness() {
    slots_.clear();  // sessions close their data_fds
    FUZZ_CHECK(kernel_.data_fds.empty(),
               std::to_string(kernel_.data_fds.size()) + " data_fds leaked");
  }

  void Step(uint8_t op, uint8_t arg, std::span<const uint8_t> answers) {
    kernel_.set_answers(answers);
    kernel_.sets.clear();
    const size_t i = arg % slots_.size();
    Slot& slot = slots_[i];
    if (op % 11 == 0) return Open(i);
    if (op % 11 == 5) return MoveToStop(arg);
    if (op % 11 == 6) return BackToRunning();
    if (op % 11 == 7) return Sync(answers);
    if (op % 11 == 8) return Sent(answers);
    if (!slot.session) return;
    DeviceSession& s = *slot.session;
    switch (op % 11) {
      case 1: Transition(i, MigState((arg >> 2) % (kNumMigStates + 2))); break;
      case 2: {
        auto info = s.QueryPrecopyInfo();
        CheckError(info.status(), "QueryPrecopyInfo");
        if (!info.ok()) break;
        FUZZ_CHECK(s.state() == MigState::kPreCopy ||
                       s.state() == MigState::kPreCopyP2p,
                   "PRECOPY_INFO answered outside PRE_COPY");
        slot.sample.initial_bytes = info->initial_bytes;
        slot.sample.dirty_bytes = info->dirty_bytes;
        break;
      }
      case 3: {
        Result<uint64_t> bytes = s.QueryStopCopyBytes();
        CheckError(bytes.status(), "QueryStopCopyBytes");
        if (bytes.ok()) slot.sample.stop_copy_bytes = *bytes;
        break;
      }
      case 4: ReadData(i, arg); break;
      case 9:
        CheckError(s.CloseDataFd(), "CloseDataFd");
        FUZZ_CHECK(s.data_fd() < 0, "data_fd still set after CloseDataFd");
        break;
      case 10: Classify(s, answers); break;
    }
    CheckFds();
  }

  void Open(size_t i) {
    slots_[i] = Slot();
    Result<std::unique_ptr<DeviceSession>> r = DeviceSession::Open(
        kernel_, kFirstDeviceFd + int(i), Name(i), options_);
    CheckError(r.status(), "DeviceSession::Open");
    if (r.ok()) slots_[i].session = std::move(r).value();
    CheckFds();
  }

 private:
  static constexpr uint64_t kTrackedPages = 1 << 20;

  static std::string Name(size_t i) { return "dev" + std::to_string(i); }

  void Transition(size_t i, MigState target) {
    DeviceSession& s = *slots_[i].session;
    const std::optional<MigState> from = s.state();
    Status st = s.Transition(target);
    CheckError(st, "Transition");
    if (!st.ok()) return;
    const std::string what = "Transition to " + std::string(MigStateName(target));
    FUZZ_CHECK(s.state() == target, what + ": cached state differs");
    FUZZ_CHECK(kernel_.devices[i].state == target, what + ": device is elsewhere");
    if (IsSessionless(target)) {
      FUZZ_CHECK(s.data_fd() < 0, what + " kept a data_fd");
    }
    if (from) {
      Result<PathDataEffect> effect =
          DataEffectOfSet(*from, target, s.capabilities().migration_flags);
      if (effect.ok() && effect->opens_data_fd) {
        FUZZ_CHECK(s.data_fd() >= 0, what + " has no data_fd");
      }
    }
  }

  std::vector<DeviceSession*> Sessions() {
    std::vector<DeviceSession*> out;
    for (Slot& slot : slots_) {
      if (slot.session) out.push_back(slot.session.get());
    }
    return out;
  }

  void MoveToStop(uint8_t arg) {
    const MigState target = arg & 0x80 ? MigState::kStopCopy : MigState::kStop;
    std::vector<DeviceSession*> sessions = Sessions();
    if (sessions.empty()) return;
    Status st = MoveDevicesToStop(sessions, target);
    CheckError(st, "MoveDevicesToStop");
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (!slots_[i].session) continue;
      const MigState now = kernel_.devices[i].state;
      if (st.ok()) {
        FUZZ_CHECK(now == target, "MoveDevicesToStop left " + Name(i) + " in " +
                                      std::string(MigStateName(now)));
      } else {
        FUZZ_CHECK(now == MigState::kRunning ||
                       st.message().find("except") != std::string::npos,
                   "failed MoveDevicesToStop left " + Name(i) + " in " +
                       std::string(MigStateName(now)) + " silently: " +
                       st.ToString());
      }
    }
    if (st.ok()) {  // every quiescing SET came before the first stop
      bool stopped = false;
      for (const auto& [device, set_target] : kernel_.sets) {
        if (set_target == MigState::kStop || set_target == MigState::kStopCopy) {
          stopped = true;
        }
        FUZZ_CHECK(!(stopped && (set_target == MigState::kRunningP2p ||
                                 set_target == MigState::kPreCopyP2p)),
                   Name(device) + " quiesced after a device stopped");
      }
    }
    CheckFds();
  }

  void BackToRunning() {
    std::vector<DeviceSession*> sessions = Sessions();
    Status st = ReturnDevicesToRunning(sessions);
    CheckError(st, "ReturnDevicesToRunning");
    for (size_t i = 0; st.ok() && i < slots_.size(); ++i) {
      if (!slots_[i].session) continue;
      FUZZ_CHECK(kernel_.devices[i].state == MigState::kRunning,
                 "ReturnDevicesToRunning succeeded but " + Name(i) + " is in " +
                     std::string(MigStateName(kernel_.devices[i].state)));
    }
    CheckFds();
  }

  void ReadData(size_t i, uint8_t arg) {
    Slot& slot = slots_[i];
    const int fd = slot.session->data_fd();
    if (fd < 0) return;
    if (slot.reader_fd != fd) {
      DataFdReaderOptions options;
      options.chunk_bytes = 1 + size_t(arg >> 2) * 1021;
      slot.reader = std::make_unique<DataFdReader>(kernel_, fd, uint32_t(i),
                                                   Name(i), options);
      slot.reader_fd = fd;
      slot.next_sequence = 0;
    }
    const DataPhase phase = slot.session->state() == MigState::kStopCopy
                                ? DataPhase::kStopCopy
                                : DataPhase::kPreCopy;
    slot.reader->set_phase(phase);
    ByteBuffer chunk;
    for (int n = 0; n < 1 + (arg >> 5) && !slot.reader->ended(); ++n) {
      uint64_t sequence = ~uint64_t{0};
      Result<ReadOutcome> r = slot.reader->Read(chunk, &sequence);
      CheckError(r.status(), "DataFdReader::Read");
      if (!r.ok()) return;
      if (*r == ReadOutcome::kData) {
        FUZZ_CHECK(!chunk.empty(), "kData with no bytes");
        FUZZ_CHECK(sequence == slot.next_sequence++, "chunk out of sequence");
      } else {
        FUZZ_CHECK(chunk.empty(), "bytes handed out without kData");
      }
      if (*r == ReadOutcome::kEnd) {
        FUZZ_CHECK(phase == DataPhase::kStopCopy, "end of stream in PRE_COPY");
      }
    }
  }

  void Classify(DeviceSession& s, std::span<const uint8_t> answers) {
    if (s.data_fd() >= 0) {
      auto info = QueryPrecopyInfo(kernel_, s.data_fd(), s.name());
      CheckError(info.status(), "QueryPrecopyInfo (io)");
    }
    Bytes a(answers.subspan(std::min<size_t>(answers.size(), 2)));
    const DataPhase phase = a.U8() & 1 ? DataPhase::kStopCopy : DataPhase::kPreCopy;
    const long result = long(a.U64());
    if (result == LONG_MIN) return;  // -result would overflow
    Result<ReadOutcome> r = ClassifyDataFdRead(phase, result, s.name());
    CheckError(r.status(), "ClassifyDataFdRead");
    FUZZ_CHECK(result <= 0 || (r.ok() && *r == ReadOutcome::kData),
               "a positive read is not data");
  }

  void Sync(std::span<const uint8_t> answers) {
    Bytes a(answers);
    SyncSample sample;
    now_ns_ += a.U32();
    sample.now_ns = now_ns_;
    sample.sync_ns = a.U32();
    const uint32_t page_sizes[] = {4096, 65536, 512, 0, 2u << 20};
    sample.page_size_bytes = page_sizes[a.U8() % std::size(page_sizes)];
    sample.ram_pending_pages = a.U32() % (2 * kTrackedPages);
    sample.dirtied_pages = a.U32() % (2 * kTrackedPages);
    sample.wws_pages = a.U32() % (2 * kTrackedPages);
    sample.source_pages = {a.U32() % (2 * kTrackedPages)};
    for (const Slot& slot : slots_) sample.devices.push_back(slot.sample);
    if (a.U8() == 0xff) sample.devices.pop_back();
    CheckError(estimator_.RecordSync(sample), "RecordSync");
    CheckEstimate(estimator_.Current());
  }

  void Sent(std::span<const uint8_t> answers) {
    Bytes a(answers);
    const uint64_t bytes = a.U64() >> (a.U8() % 64);
    const uint64_t elapsed_ns = a.U64() >> (a.U8() % 64);
    estimator_.RecordSent(bytes, elapsed_ns);
    const uint8_t cost = a.U8();
    estimator_.RecordFixedCost(FixedCost(cost % kNumFixedCosts),
                               a.U64() >> (cost / kNumFixedCosts % 64));
    CheckEstimate(estimator_.Current());
  }

  // Every open data_fd belongs to the session of its device.
  void CheckFds() {
    for (const auto& [fd, device] : kernel_.data_fds) {
      const Slot& slot = slots_[device];
      FUZZ_CHECK(slot.session && slot.session->data_fd() == fd,
                 "data_fd " + std::to_string(fd) + " of " + Name(device) +
                     " is open but not held by its session");
    }
  }

  FakeKernel& kernel_;
  const DeviceSession::Options options_;
  Estimator estimator_;
  std::vector<Slot> slots_;
  uint64_t now_ns_ = 0;
};

void RunInput(std::span<const uint8_t> data) {
  Bytes in(data);
  FakeKernel kernel;
  const size_t count = 1 + in.U8() % 3;
  for (size_t i = 0; i < 3; ++i) {
    const uint8_t b = in.U8();
    if (i >= count) continue;
    FakeDevice d;
    d.flags = kMigrationStopCopy | (b & kMigrationP2p) | (b & kMigrationPreCopy);
    if (b & 8) d.flags &= ~kMigrationStopCopy;
    if (b & 16) d.flags |= uint64_t{1} << 9;
    d.stop_copy_bytes = uint64_t{64 << 10} * (1 + (b >> 5));
    kernel.devices.push_back(d);
  }
  const uint8_t options_byte = in.U8();
  DeviceSession::Options options;
  options.recovery.return_to_running = (options_byte & 1) == 0;
  options.recovery.reset_on_error = (options_byte & 2) == 0;
  Estimator::Options estimator_options;
  estimator_options.switchover_ack_required = (options_byte & 4) != 0;
  estimator_options.downtime_limit_ms = 1 + (options_byte >> 3) * 40;
  estimator_options.stall_syncs = 1 + (options_byte >> 6);
  FUZZ_CHECK(Estimator::Validate(estimator_options).ok(), "estimator options");

  Harness harness(kernel, options, estimator_options);
  for (size_t i = 0; i < count; ++i) harness.Open(i);
  for (int ops = 0; ops < 256 && !in.empty(); ++ops) {
    const uint8_t op = in.U8();
    const uint8_t arg = in.U8();
    const uint8_t length = in.U8();
    harness.Step(op, arg, in.Take(length));
  }
}

// ---- Seed corpus ----------------------------------------------------------

class Seed {
 public:
  // count devices with these flag bytes; options byte.
  Seed(std::vector<uint8_t> flags, uint8_t options) {
    bytes_.push_back(uint8_t(flags.size() - 1));
    flags.resize(3);
    bytes_.insert(bytes_.end(), flags.begin(), flags.end());
    bytes_.push_back(options);
  }
  Seed& Op(uint8_t op, uint8_t arg, std::vector<uint8_t> answers = {}) {
    bytes_.push_back(op);
    bytes_.push_back(arg);
    bytes_.push_back(uint8_t(answers.size()));
    bytes_.insert(bytes_.end(), answers.begin(), answers.end());
    return *this;
  }
  Seed& To(size_t device, MigState s, std::vector<uint8_t> answers = {}) {
    return Op(1, uint8_t(uint32_t(s) << 2 | device), std::move(answers));
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

constexpr uint8_t kP2pPreCopy = 6;
const std::vector<uint8_t> kSyncAnswers = {0x40, 0x42, 0x0f, 0, 0x10, 0, 0, 0,
                                           0, 1, 0, 0, 0, 0x10, 0, 0};
const std::vector<uint8_t> kSentAnswers = {0, 0, 0, 4, 0, 0, 0, 0, 0,
                                           0, 0x2d, 0x31, 1, 0, 0, 0, 0};

std::map<std::string, Seed> Seeds() {
  std::map<std::string, Seed> seeds;
  using S = MigState;
  Seed drain({kP2pPreCopy}, 0);
  drain.To(0, S::kPreCopy).Op(2, 0).Op(3, 0).Op(7, 0, kSyncAnswers)
      .Op(8, 0, kSentAnswers).Op(4, 0xe0).Op(2, 0).Op(7, 0, kSyncAnswers)
      .To(0, S::kStopCopy).Op(4, 0xe0).Op(4, 0xe0).To(0, S::kStop)
      .To(0, S::kRunning);
  seeds.emplace("precopy-drain-stop", drain);

  Seed fail({kP2pPreCopy}, 0);
  fail.To(0, S::kPreCopy)
      .To(0, S::kStopCopy, {2, 1, 0, 1})  // fails at arc 1 into ERROR
      .To(0, S::kPreCopy).To(0, S::kStopCopy, {2, 0, 1, 0})
      .To(0, S::kRunning);
  seeds.emplace("set-fails-then-recovers", fail);

  Seed p2p({kP2pPreCopy, kP2pPreCopy, 2}, 0);
  p2p.To(0, S::kPreCopy).To(1, S::kPreCopy).Op(5, 0x80)
      .Op(6, 0).To(0, S::kPreCopy)
      .Op(5, 0x80, {0, 0, 0, 0, 2, 0, 0, 0})  // one stop fails: unwind
      .Op(5, 0x00).Op(6, 0);
  seeds.emplace("p2p-three-devices", p2p);

  Seed garbage({kP2pPreCopy, 4}, 1);
  std::vector<uint8_t> huge = {2};
  huge.insert(huge.end(), 20, 0xff);
  garbage.To(0, S::kPreCopy).Op(2, 0, huge).Op(3, 0, {2, 0xff, 0xff, 0xff,
                                                      0xff, 0xff, 0xff, 0xff,
                                                      0xff})
      .Op(7, 0, kSyncAnswers).Op(8, 0, kSentAnswers).Op(7, 0, kSyncAnswers)
      .Op(0, 1, {2, 0, 0, 0, 0, 0, 0, 0, 0})  // MIGRATION flags of 0
      .Op(1, 1, {2, 0x34, 0x12, 0, 0});       // GET of a raw 0x1234
  seeds.emplace("answers-out-of-range", garbage);

  Seed reads({kP2pPreCopy}, 0);
  reads.To(0, S::kPreCopy)
      .Op(4, 0x60, {1, 6, 1, 4, 1, 5, 2, 9, 0, 0, 0, 0, 0, 0, 0, 3})
      .To(0, S::kStopCopy)
      .Op(4, 0x64, {1, 5, 2, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 1})
      .Op(10, 0, {0, 0, 1, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
      .Op(9, 0).To(0, S::kStop);
  seeds.emplace("data-fd-reads", reads);

  Seed resume({0}, 2);
  resume.To(0, S::kStop).To(0, S::kResuming).Op(9, 0).To(0, S::kStop)
      .To(0, S::kResuming, {3}).To(0, S::kStop, {2, 0, 0, 1})
      .To(0, S::kRunning);
  seeds.emplace("resuming-and-fd-bugs", resume);

  Seed unsupported({8, 16}, 3);
  unsupported.Op(0, 1, {1, 3}).Op(0, 1, {0, 2}).To(1, S::kStopCopy)
      .To(1, S::kPreCopy).To(1, S::kError).Op(1, 1, {3});
  seeds.emplace("discovery-and-refusals", unsupported);
  return seeds;
}

}  // namespace
}  // namespace converge

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("CONVERGE_WRITE_SEEDS");
  if (dir == nullptr) return 0;
  for (const auto& [name, seed] : converge::Seeds()) {
    const std::string path = std::string(dir) + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr ||
        std::fwrite(seed.bytes().data(), 1, seed.bytes().size(), f) !=
            seed.bytes().size()) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      std::exit(1);
    }
    std::fclose(f);
  }
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  converge::RunInput({data, size});
  return 0;
}
