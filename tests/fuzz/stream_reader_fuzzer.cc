// libFuzzer target: any byte string fed to StreamReader must be either read
// to a verified end-of-stream or rejected with kCorrupt, without crashing,
// leaking, or allocating past the reader's caps.
//
// Each input is read twice: as is, and "resealed" (every record's checksum
// recomputed), so mutations get past the checksum into the payload parsers.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/stream_reader.h"
#include "io/transport.h"
#include "io/wire_format.h"

namespace {

void ReadStream(std::span<const uint8_t> bytes) {
  using converge::StatusCode;
  converge::MemoryTransport transport(bytes);
  auto reader = converge::StreamReader::Open(transport);
  if (!reader.ok()) {
    if (reader.status().code() != StatusCode::kCorrupt) std::abort();
    return;
  }
  while (!(*reader)->finished()) {
    auto record = (*reader)->Next();
    if (!record.ok()) {
      if (record.status().code() != StatusCode::kCorrupt) std::abort();
      return;
    }
    // Touch the decoded bytes so the sanitizers see every access.
    uint8_t sum = 0;
    for (uint8_t b : (*record)->data) sum ^= b;
    volatile uint8_t sink = sum;
    (void)sink;
  }
}

// Recomputes the checksum of every whole record in place.
void Reseal(std::vector<uint8_t>& bytes) {
  using namespace converge;
  size_t offset = kPreambleBytes;
  while (offset + kRecordHeaderBytes <= bytes.size()) {
    uint8_t* header = bytes.data() + offset;
    const size_t length = GetU32(header + 4);
    if (length > bytes.size() - offset - kRecordHeaderBytes) return;
    const std::span<const uint8_t> parts[] = {
        {header + kRecordHeaderBytes, length}};
    PutU64(header + 16, RecordChecksum(header, parts));
    offset += kRecordHeaderBytes + length;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ReadStream({data, size});
  std::vector<uint8_t> resealed(data, data + size);
  Reseal(resealed);
  ReadStream(resealed);
  return 0;
}
