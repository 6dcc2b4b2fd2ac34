// IovaDirtySource: what the IOVA-indexed sources (VFIO type1, iommufd,
// device DMA logging) share: translating GPA windows to IOVA through an
// IovaTable, aligning them to the kernel's page size and splitting them
// into kernel calls, rescaling kernel bits into the RAM bitmap, the stats,
// and the never-lose-a-bit rule.
//
// A harvest into a clean window (HarvestIntoZeroed) lets the kernel write
// its report straight into the caller's words where a call lines up with
// them, delivers pending bits after the calls, and then lists the set
// words in one vector scan that also counts them; otherwise each call
// reads into a reused bounce buffer that is then ORed into the output.
//
// Kernel logs clear on read, and a kernel call may have to cover more than
// the requested window (a type1 call may not cut through a mapping; a 2 MiB
// IOMMU page covers 512 RAM pages). Bits read outside the window are kept
// as PENDING bits of the tracked range they belong to and are delivered by
// the next harvest of that range, so nothing read is ever dropped. On a
// failed call the whole window is marked dirty in the output, the rest of
// what the call covered is marked pending, and AfterReadError() runs (DMA
// logging restarts tracking there, which makes every tracked page pending).
//
// Thread-safety: one thread at a time (the DirtySource contract).

#ifndef CONVERGE_IOMMU_IOVA_DIRTY_SOURCE_H_
#define CONVERGE_IOMMU_IOVA_DIRTY_SOURCE_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "iommu/dirty_source.h"
#include "iommu/iova_table.h"

namespace converge {

class IovaDirtySource : public DirtySource {
 public:
  Status Start(std::span<const GpaRange> ranges,
               uint64_t ram_page_size) override;
  Status Harvest(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                 uint64_t out_first_page) override;
  // Kernel calls that lie inside the window, start on a 64-page boundary
  // of it and report at the RAM page size write straight into out; the
  // others go through the bounce buffer as in Harvest().
  Status HarvestIntoZeroed(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                           std::vector<uint64_t>& set_words) override;
  Status Stop() override;
  DirtySourceLimits limits() const override;

  bool started() const { return started_; }
  // RAM pages held as pending (read from the kernel outside a window).
  uint64_t pending_pages() const;

 protected:
  explicit IovaDirtySource(IovaTable table) : table_(std::move(table)) {}

  // Kernel geometry, set by StartTracking(): the log's page size, the IOVA
  // alignment of every call (a multiple of page_bytes) and the most IOVA
  // bytes one call may cover (a multiple of align_bytes).
  void SetGeometry(uint64_t page_bytes, uint64_t align_bytes,
                   uint64_t max_call_bytes);
  uint64_t log_page_bytes() const { return page_bytes_; }

  // Starts the kernel log over these IOVA spans and calls SetGeometry().
  virtual Status StartTracking(std::span<const IovaSpan> spans) = 0;
  virtual Status StopTracking() = 0;
  // One kernel call: ORs the log of span at log_page_bytes() into words
  // (zeroed by the caller, ceil(pages / 64) of them) and clears it unless
  // read_flags asks otherwise (interpreted by the subclass).
  virtual Status ReadLog(const IovaSpan& span, uint32_t read_flags,
                         std::span<uint64_t> words) = 0;
  // Splits the aligned window [lo, hi) into kernel calls. The default cuts
  // it into max_call_bytes pieces; calls may extend past [lo, hi).
  virtual Status PlanCalls(uint64_t lo, uint64_t hi,
                           std::vector<IovaSpan>& calls) const;
  // Runs after a failed ReadLog (the window is already marked). DMA
  // logging restarts tracking here.
  virtual Status AfterReadError() { return OkStatus(); }

  // Harvest with subclass read flags (iommufd's NO_CLEAR).
  Status HarvestWithFlags(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                          uint64_t out_first_page, uint32_t read_flags);
  // Marks every tracked page pending (after the kernel log was lost).
  void MarkAllPending();

  uint64_t ram_page_bytes() const { return ram_page_bytes_; }

 private:
  struct Tracked {
    uint64_t gpa = 0;
    uint64_t iova = 0;
    uint64_t pages = 0;       // RAM pages
    DirtyBitmap pending;      // empty until something is pending
    uint64_t pending_count = 0;
  };
  // The window being harvested: tracked range, range-relative first page.
  struct Window {
    size_t range = 0;
    uint64_t first = 0;
    uint64_t pages = 0;
    uint64_t iova_lo = 0, iova_hi = 0;
  };

  // The body of every harvest, timed and with the error accounting.
  // set_words non-null: out is clean over the window (HarvestIntoZeroed).
  Status HarvestTimed(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                      uint64_t out_first_page, uint32_t read_flags,
                      std::vector<uint64_t>* set_words);
  // Adds to `reported` the pages delivered into out, except those a kernel
  // call wrote straight into a clean out, and to `marked` those set
  // because of an error.
  Status HarvestLocked(uint64_t gpa, uint64_t num_pages, DirtyBitmap& out,
                       uint64_t out_first_page, uint32_t read_flags,
                       bool out_zeroed, uint64_t& reported, uint64_t& marked);
  // Moves the window's pending bits into out. Returns the pages moved.
  uint64_t DeliverPending(Tracked& t, const Window& w, DirtyBitmap& out,
                          uint64_t out_first_page);
  // ORs one call's words into out (the window's part) and pending (the
  // rest). Returns RAM pages set in out.
  Result<uint64_t> Deliver(const IovaSpan& call,
                           std::span<const uint64_t> words, const Window& w,
                           DirtyBitmap& out, uint64_t out_first_page);
  // Marks IOVA [lo, hi) pending in whichever tracked ranges it touches,
  // except the window's own pages.
  void AddPending(uint64_t lo, uint64_t hi, const Window* except);
  std::string Describe(uint64_t gpa, uint64_t num_pages) const;

  IovaTable table_;
  bool started_ = false;
  uint64_t ram_page_bytes_ = 4096;
  uint64_t page_bytes_ = 4096;
  uint64_t align_bytes_ = 4096;
  uint64_t max_call_bytes_ = UINT64_MAX;
  std::vector<Tracked> tracked_;   // sorted by gpa
  std::vector<IovaSpan> calls_;    // reused per harvest
  std::vector<uint64_t> buffer_;   // reused kernel bitmap
};

}  // namespace converge

#endif  // CONVERGE_IOMMU_IOVA_DIRTY_SOURCE_H_
