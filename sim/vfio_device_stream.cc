#include "sim/vfio_device_stream.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace converge::sim {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Threshold(double fraction) {
  if (fraction <= 0) return 0;
  if (fraction >= 1) return ~uint64_t{0};
  return static_cast<uint64_t>(fraction * 18446744073709551616.0);
}

constexpr std::string_view kWords[64] = {
    "device", "state",  "queue",  "vector", "buffer", "ring",   "page",
    "memory", "table",  "entry",  "config", "status", "error",  "count",
    "index",  "offset", "length", "flags",  "mask",   "value",  "write",
    "read",   "map",    "unmap",  "dma",    "iova",   "region", "bar",
    "irq",    "msix",   "link",   "port",   "packet", "frame",  "header",
    "tail",   "head",   "doorbell", "context", "command", "response",
    "migration", "dirty", "log",  "range",  "report", "start",  "stop",
    "copy",   "resume", "precopy", "data",  "stream", "session", "vfio",
    "pci",    "host",   "guest",  "vcpu",   "0x0000", "0xffff", "=",
    "{",      "}"};

// Text-like bytes: words and separators drawn at random, built once.
const std::vector<uint8_t>& TextCorpus() {
  static const std::vector<uint8_t>* corpus = [] {
    auto* c = new std::vector<uint8_t>();
    constexpr size_t kBytes = (1 << 20) + 4096;
    c->reserve(kBytes + 16);
    uint64_t rng = 0x7465787463727573ull;
    while (c->size() < kBytes) {
      uint64_t bits = SplitMix64(rng);
      for (int i = 0; i < 8 && c->size() < kBytes; ++i, bits >>= 8) {
        std::string_view word = kWords[bits & 63];
        c->insert(c->end(), word.begin(), word.end());
        c->push_back((bits & 0xc0) == 0 ? '\n' : ' ');
      }
    }
    c->resize(kBytes);
    return c;
  }();
  return *corpus;
}

void PutLe64(uint8_t* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t GetLe64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{in[i]} << (8 * i);
  return v;
}

}  // namespace

DeviceStateContent::DeviceStateContent(uint64_t seed, ContentMix mix)
    : seed_(seed) {
  assert(mix.zero_fraction >= 0 && mix.text_fraction >= 0);
  assert(mix.zero_fraction + mix.text_fraction <= 1.0 + 1e-9);
  zero_below_ = Threshold(mix.zero_fraction);
  text_below_ = Threshold(std::min(1.0, mix.zero_fraction + mix.text_fraction));
}

void DeviceStateContent::FillBlock(uint64_t block, uint8_t* out) const {
  uint64_t rng = seed_ ^ (block * 0xd1342543de82ef95ull);
  uint64_t kind = SplitMix64(rng);
  if (kind < zero_below_) {
    std::memset(out, 0, kBlockBytes);
  } else if (kind < text_below_) {
    // A 4 KiB window of a 1 MiB corpus: lz4's 64 KiB window rarely holds
    // the same part twice, so blocks compress like the text itself.
    const std::vector<uint8_t>& corpus = TextCorpus();
    uint64_t slots = (corpus.size() - kBlockBytes) / 64;
    std::memcpy(out, corpus.data() + (SplitMix64(rng) % slots) * 64,
                kBlockBytes);
  } else {
    for (size_t i = 0; i < kBlockBytes; i += 8) {
      uint64_t v = SplitMix64(rng);
      std::memcpy(out + i, &v, 8);
    }
  }
}

void DeviceStateContent::Fill(uint64_t offset, std::span<uint8_t> out) const {
  uint8_t scratch[kBlockBytes];
  size_t done = 0;
  while (done < out.size()) {
    uint64_t at = offset + done;
    uint64_t block = at / kBlockBytes;
    size_t in_block = static_cast<size_t>(at % kBlockBytes);
    size_t n = std::min<size_t>(kBlockBytes - in_block, out.size() - done);
    if (in_block == 0 && n == kBlockBytes) {
      FillBlock(block, out.data() + done);
    } else {
      FillBlock(block, scratch);
      std::memcpy(out.data() + done, scratch + in_block, n);
    }
    done += n;
  }
}

std::array<uint8_t, StreamTrailer::kBytes> StreamTrailer::Encode() const {
  std::array<uint8_t, kBytes> out;
  PutLe64(out.data(), kMagic);
  PutLe64(out.data() + 8, payload_bytes);
  PutLe64(out.data() + 16, payload_xxh3);
  return out;
}

std::optional<StreamTrailer> StreamTrailer::Decode(
    std::span<const uint8_t, kBytes> bytes) {
  if (GetLe64(bytes.data()) != kMagic) return std::nullopt;
  StreamTrailer t;
  t.payload_bytes = GetLe64(bytes.data() + 8);
  t.payload_xxh3 = GetLe64(bytes.data() + 16);
  return t;
}

StreamHasher::StreamHasher() : state_(XXH3_createState()) {
  if (state_ == nullptr) std::abort();
  XXH3_64bits_reset(state_);
}

StreamHasher::~StreamHasher() { XXH3_freeState(state_); }

void StreamHasher::Update(std::span<const uint8_t> bytes) {
  XXH3_64bits_update(state_, bytes.data(), bytes.size());
  bytes_ += bytes.size();
}

uint64_t StreamHasher::Digest() const { return XXH3_64bits_digest(state_); }

void StreamVerifier::Update(std::span<const uint8_t> bytes) {
  constexpr size_t kTail = StreamTrailer::kBytes;
  if (bytes.size() >= kTail) {
    hasher_.Update(std::span<const uint8_t>(tail_.data(), tail_len_));
    hasher_.Update(bytes.first(bytes.size() - kTail));
    std::memcpy(tail_.data(), bytes.data() + bytes.size() - kTail, kTail);
    tail_len_ = kTail;
    return;
  }
  size_t total = tail_len_ + bytes.size();
  if (total > kTail) {
    size_t spill = total - kTail;
    hasher_.Update(std::span<const uint8_t>(tail_.data(), spill));
    std::memmove(tail_.data(), tail_.data() + spill, tail_len_ - spill);
    tail_len_ -= spill;
  }
  std::memcpy(tail_.data() + tail_len_, bytes.data(), bytes.size());
  tail_len_ += bytes.size();
}

Status StreamVerifier::Finish() const {
  if (tail_len_ < StreamTrailer::kBytes) {
    return CorruptError("device stream of " + std::to_string(bytes_seen()) +
                        " bytes is shorter than its trailer");
  }
  std::optional<StreamTrailer> t =
      StreamTrailer::Decode(std::span<const uint8_t, StreamTrailer::kBytes>(tail_));
  if (!t) {
    return CorruptError("device stream of " + std::to_string(bytes_seen()) +
                        " bytes does not end with a trailer (incomplete)");
  }
  if (t->payload_bytes != hasher_.bytes()) {
    return CorruptError("device stream trailer says " +
                        std::to_string(t->payload_bytes) +
                        " payload bytes, received " +
                        std::to_string(hasher_.bytes()));
  }
  if (t->payload_xxh3 != hasher_.Digest()) {
    return CorruptError("device stream payload hash mismatch over " +
                        std::to_string(hasher_.bytes()) + " bytes");
  }
  return OkStatus();
}

}  // namespace converge::sim
