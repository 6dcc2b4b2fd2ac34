// PipelineFence(): makes the ordering that tbb::parallel_pipeline
// guarantees visible to ThreadSanitizer.
//
// TBB runs a serial stage one item at a time and passes each item from stage
// to stage, but it synchronizes inside libtbb (futexes, uninstrumented
// atomics), which ThreadSanitizer cannot see: state a stage wrote on one
// worker and the next invocation reads on another looks like a race. Every
// stage calls PipelineFence() when it starts and when it ends (a
// PipelineStage in its body), and the
// caller before and after the run; each call is an acq_rel read-modify-write
// of one process-wide atomic, so everything written before one call is
// visible after any later one. Cost: one atomic RMW per stage per item.
//
// TBB's own inlined code (the filter objects it builds on the calling thread
// and runs on a worker) is covered by a ThreadSanitizer suppression that
// only matches when the racing access itself is TBB code, so races in our
// stage bodies are still reported (pipeline_fence.cc).
//
// Thread-safety: safe from any thread.

#ifndef CONVERGE_IO_PIPELINE_FENCE_H_
#define CONVERGE_IO_PIPELINE_FENCE_H_

namespace converge {

void PipelineFence();

// Calls PipelineFence() when a stage starts and again when it ends, on every
// return path.
class PipelineStage {
 public:
  PipelineStage() { PipelineFence(); }
  ~PipelineStage() { PipelineFence(); }
  PipelineStage(const PipelineStage&) = delete;
  PipelineStage& operator=(const PipelineStage&) = delete;
};

}  // namespace converge

#endif  // CONVERGE_IO_PIPELINE_FENCE_H_
