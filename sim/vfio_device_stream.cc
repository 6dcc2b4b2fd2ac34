#include "sim/vfio_device_stream.h"

#include <xxhash.h>

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

constexpr size_t kBlockBytes = DeviceStateContent::kBlockBytes;
// Zero blocks are spread over several zero pages: a pipe holds a reference
// to every page it carries, and counts taken by the device thread and
// dropped by the reader on one page would bounce one cache line between
// the two cores for a quarter of all blocks.
constexpr size_t kZeroPages = 64;
// Text windows start on 64-byte slots of a 1 MiB corpus: lz4's 64 KiB window
// rarely holds the same part twice, so blocks compress like the text itself.
constexpr size_t kTextSlotBytes = 64;
constexpr size_t kTextSlots = (1 << 20) / kTextSlotBytes;
constexpr size_t kTextBytes = kTextSlots * kTextSlotBytes + kBlockBytes;
// 16 MiB of random pages, visited with an odd stride: any kRandomPages
// consecutive blocks of a stream map to distinct pages.
constexpr size_t kRandomPages = 4096;
constexpr uint64_t kRandomStride = 0x9e3779b97f4a7c15ull;

// Every block any stream can contain, with its XXH3-64. Built once, never
// written again and never freed: pipes hold references to these pages.
struct ContentPools {
  const uint8_t* zero;  // kZeroPages blocks
  uint64_t zero_hash;
  const uint8_t* text;                 // kTextBytes
  std::vector<uint64_t> text_hashes;   // per slot
  const uint8_t* random;               // kRandomPages blocks
  std::vector<uint64_t> random_hashes; // per page
};

uint8_t* AllocatePages(size_t bytes) {
  void* p = std::aligned_alloc(kBlockBytes, bytes);
  if (p == nullptr) std::abort();
  return static_cast<uint8_t*>(p);
}

// Text-like bytes: words and separators drawn at random.
void WriteTextCorpus(uint8_t* out) {
  uint64_t rng = 0x7465787463727573ull;
  size_t size = 0;
  while (size < kTextBytes) {
    uint64_t bits = SplitMix64(rng);
    for (int i = 0; i < 8 && size < kTextBytes; ++i, bits >>= 8) {
      std::string_view word = kWords[bits & 63];
      size_t n = std::min(word.size(), kTextBytes - size);
      std::memcpy(out + size, word.data(), n);
      size += n;
      if (size < kTextBytes) out[size++] = (bits & 0xc0) == 0 ? '\n' : ' ';
    }
  }
}

const ContentPools* BuildPools() {
  auto* p = new ContentPools;
  uint8_t* zero = AllocatePages(kZeroPages * kBlockBytes);
  std::memset(zero, 0, kZeroPages * kBlockBytes);
  p->zero = zero;
  p->zero_hash = XXH3_64bits(zero, kBlockBytes);

  uint8_t* text = AllocatePages(kTextBytes);
  WriteTextCorpus(text);
  p->text = text;
  p->text_hashes.resize(kTextSlots);
  for (size_t i = 0; i < kTextSlots; ++i) {
    p->text_hashes[i] = XXH3_64bits(text + i * kTextSlotBytes, kBlockBytes);
  }

  uint8_t* random = AllocatePages(kRandomPages * kBlockBytes);
  uint64_t rng = 0x72616e646f6d7067ull;
  for (size_t i = 0; i < kRandomPages * kBlockBytes; i += 8) {
    uint64_t v = SplitMix64(rng);
    std::memcpy(random + i, &v, 8);
  }
  p->random = random;
  p->random_hashes.resize(kRandomPages);
  for (size_t i = 0; i < kRandomPages; ++i) {
    p->random_hashes[i] = XXH3_64bits(random + i * kBlockBytes, kBlockBytes);
  }
  return p;
}

const ContentPools& Pools() {
  static const ContentPools* pools = BuildPools();
  return *pools;
}

}  // namespace

DeviceStateContent::DeviceStateContent(uint64_t seed, ContentMix mix)
    : seed_(seed) {
  assert(mix.zero_fraction >= 0 && mix.text_fraction >= 0);
  assert(mix.zero_fraction + mix.text_fraction <= 1.0 + 1e-9);
  zero_below_ = Threshold(mix.zero_fraction);
  text_below_ = Threshold(std::min(1.0, mix.zero_fraction + mix.text_fraction));
  uint64_t rng = seed ^ 0x706f6f6c6f666673ull;
  random_offset_ = SplitMix64(rng);
}

DeviceStateContent::Block DeviceStateContent::BlockAt(uint64_t block) const {
  const ContentPools& pools = Pools();
  uint64_t rng = seed_ ^ (block * 0xd1342543de82ef95ull);
  uint64_t kind = SplitMix64(rng);
  if (kind < zero_below_) {
    return {pools.zero + (block % kZeroPages) * kBlockBytes, pools.zero_hash};
  }
  if (kind < text_below_) {
    size_t slot = static_cast<size_t>(SplitMix64(rng) % kTextSlots);
    return {pools.text + slot * kTextSlotBytes, pools.text_hashes[slot]};
  }
  size_t page = static_cast<size_t>((block * kRandomStride + random_offset_) &
                                    (kRandomPages - 1));
  return {pools.random + page * kBlockBytes, pools.random_hashes[page]};
}

void DeviceStateContent::Fill(uint64_t offset, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    uint64_t at = offset + done;
    size_t in_block = static_cast<size_t>(at % kBlockBytes);
    size_t n = std::min<size_t>(kBlockBytes - in_block, out.size() - done);
    std::memcpy(out.data() + done, BlockAt(at / kBlockBytes).data + in_block,
                n);
    done += n;
  }
}

std::array<uint8_t, StreamTrailer::kBytes> StreamTrailer::Encode() const {
  std::array<uint8_t, kBytes> out;
  PutU64(out.data(), kMagic);
  PutU64(out.data() + 8, payload_bytes);
  PutU64(out.data() + 16, payload_digest);
  return out;
}

std::optional<StreamTrailer> StreamTrailer::Decode(
    std::span<const uint8_t, kBytes> bytes) {
  if (GetU64(bytes.data()) != kMagic) return std::nullopt;
  StreamTrailer t;
  t.payload_bytes = GetU64(bytes.data() + 8);
  t.payload_digest = GetU64(bytes.data() + 16);
  return t;
}

void PayloadDigest::Update(std::span<const uint8_t> bytes) {
  bytes_ += bytes.size();
  if (partial_bytes_ > 0) {
    size_t n = std::min(kBlockBytes - partial_bytes_, bytes.size());
    std::memcpy(partial_.data() + partial_bytes_, bytes.data(), n);
    partial_bytes_ += n;
    bytes = bytes.subspan(n);
    if (partial_bytes_ < kBlockBytes) return;
    chain_.Add(XXH3_64bits(partial_.data(), kBlockBytes));
    partial_bytes_ = 0;
  }
  while (bytes.size() >= kBlockBytes) {
    chain_.Add(XXH3_64bits(bytes.data(), kBlockBytes));
    bytes = bytes.subspan(kBlockBytes);
  }
  std::memcpy(partial_.data(), bytes.data(), bytes.size());
  partial_bytes_ = bytes.size();
}

void PayloadDigest::AddBlock(uint64_t block_hash) {
  assert(partial_bytes_ == 0);
  chain_.Add(block_hash);
  bytes_ += kBlockBytes;
}

uint64_t PayloadDigest::Digest() const {
  if (partial_bytes_ == 0) return chain_.Digest();
  HashChain last = chain_;
  last.Add(XXH3_64bits(partial_.data(), partial_bytes_));
  return last.Digest();
}

void StreamVerifier::Update(std::span<const uint8_t> bytes) {
  constexpr size_t kTail = StreamTrailer::kBytes;
  if (bytes.size() >= kTail) {
    digest_.Update(std::span<const uint8_t>(tail_.data(), tail_len_));
    digest_.Update(bytes.first(bytes.size() - kTail));
    std::memcpy(tail_.data(), bytes.data() + bytes.size() - kTail, kTail);
    tail_len_ = kTail;
    return;
  }
  size_t total = tail_len_ + bytes.size();
  if (total > kTail) {
    size_t spill = total - kTail;
    digest_.Update(std::span<const uint8_t>(tail_.data(), spill));
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
  if (t->payload_bytes != digest_.bytes()) {
    return CorruptError("device stream trailer says " +
                        std::to_string(t->payload_bytes) +
                        " payload bytes, received " +
                        std::to_string(digest_.bytes()));
  }
  if (t->payload_digest != digest_.Digest()) {
    return CorruptError("device stream payload digest mismatch over " +
                        std::to_string(digest_.bytes()) + " bytes");
  }
  return OkStatus();
}

}  // namespace converge::sim
