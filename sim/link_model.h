// LinkModel and ContentModel: the network and the guest's page contents for
// `converge-bench model`, where no page is really read or sent.
//
// ContentModel assigns every page a class (zero, text-like, incompressible)
// from a hash of its index, in the fractions asked for, and knows what each
// class costs on the wire. The compressed size of each class is calibrated
// by the caller (the harness compresses sample pages with the real codec);
// until then every non-zero page costs its full size. LinkModel turns bytes
// into time.
//
// Thread-safety: both are immutable after construction.

#ifndef CONVERGE_SIM_LINK_MODEL_H_
#define CONVERGE_SIM_LINK_MODEL_H_

#include <cstdint>

namespace converge::sim {

struct LinkOptions {
  double bandwidth_bps = 25e9 / 8;  // bytes per second (25 Gb/s)
  double latency_ms = 0.05;         // one-way, added once per transfer
};

class LinkModel {
 public:
  explicit LinkModel(LinkOptions options) : options_(options) {}
  // Time to move `bytes` over the link, latency included.
  uint64_t TransferNs(uint64_t bytes) const;
  double bandwidth_bps() const { return options_.bandwidth_bps; }

 private:
  LinkOptions options_;
};

enum class PageClass : uint8_t { kZero, kText, kRandom };

struct ContentOptions {
  double zero_fraction = 0.30;
  double text_fraction = 0.40;  // the rest is incompressible
  uint64_t page_size = 4096;
  uint64_t seed = 1;
};

class ContentModel {
 public:
  explicit ContentModel(ContentOptions options)
      : options_(options),
        text_bytes_(options.page_size),
        random_bytes_(options.page_size) {}

  PageClass ClassOf(uint64_t page) const;

  // The measured compressed size of a page of `cls` (framing excluded).
  // REQUIRES: cls != kZero.
  void set_compressed_bytes(PageClass cls, uint64_t bytes);
  // Wire bytes for one page of `cls`, framing included. Zero pages cost
  // only their place in a record.
  uint64_t WireBytes(PageClass cls) const;

  // Per-page framing share of a RAM record.
  static constexpr uint64_t kFramingBytes = 16;

 private:
  ContentOptions options_;
  uint64_t text_bytes_;
  uint64_t random_bytes_;
};

}  // namespace converge::sim

#endif  // CONVERGE_SIM_LINK_MODEL_H_
