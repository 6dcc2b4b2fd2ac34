// StreamWriter: frames records of the converge wire format onto a Transport
// (preamble and stream header first, end-of-stream with totals last) and
// keeps the totals and checksums the reader verifies.
//
// Payloads can be encoded elsewhere (in parallel, EncodeRamPayload /
// EncodeDevicePayload, which also take the payload's hashes) and framed here
// in order, or encoded here by the convenience calls. Framing an encoded
// payload hashes 16 bytes of its header, never the payload again.
//
// Thread-safety: none. One thread writes at a time (the serial output stage
// of a pipeline).

#ifndef CONVERGE_IO_STREAM_WRITER_H_
#define CONVERGE_IO_STREAM_WRITER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>

#include "base/status.h"
#include "io/codec.h"
#include "io/transport.h"
#include "io/wire_format.h"

namespace converge {

class StreamWriter {
 public:
  // Writes the preamble and the stream header record.
  [[nodiscard]] static Result<std::unique_ptr<StreamWriter>> Create(
      Transport& transport, const StreamLayout& layout,
      const CodecOptions& codec = {});

  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;
  ~StreamWriter();

  const StreamLayout& layout() const { return layout_; }
  const CodecOptions& codec() const { return codec_; }

  // Frames a RAM payload made by EncodeRamPayload.
  // REQUIRES: the pages lie inside the region named in the payload.
  Status WriteRam(const EncodedPayload& payload);
  // Encodes and frames page_count pages of region from host memory pages.
  Status WriteRamPages(uint32_t region, uint64_t first_page,
                       uint32_t page_count, const uint8_t* pages);

  // Frames a device payload made by EncodeDevicePayload.
  // REQUIRES: its sequence is next_sequence(device_id).
  Status WriteDeviceData(uint32_t device_id, const EncodedPayload& payload);
  // Encodes and frames one chunk of a device's data.
  Status WriteDeviceChunk(uint32_t device_id, std::span<const uint8_t> data);
  // The sequence number the next chunk of device_id must carry.
  uint64_t next_sequence(uint32_t device_id) const;

  Status WriteIterationMark(uint64_t iteration, uint64_t timestamp_ns);
  // Writes the device's end-of-device record (totals and digest).
  Status EndDevice(uint32_t device_id);
  // Writes end-of-stream with the totals and flushes the transport.
  Status Finish();

  uint64_t records_written() const { return records_; }
  uint64_t ram_pages_written() const { return ram_pages_; }
  uint64_t device_bytes_written(uint32_t device_id) const;

 private:
  struct DeviceStream {
    uint64_t bytes = 0;
    uint64_t chunks = 0;
    bool ended = false;
    HashChain digest;  // of the chunks' XXH3-64s
  };

  StreamWriter(Transport& transport, StreamLayout layout, CodecOptions codec);
  // Frames one record whose payload (the parts) hashes to payload_xxh3.
  Status WriteRecord(RecordType type, Codec encoding,
                     std::span<const std::span<const uint8_t>> parts,
                     uint64_t payload_xxh3);
  // The same for a small record, hashed here.
  Status WriteRecord(RecordType type, std::span<const uint8_t> payload);
  Status Emit(std::span<const uint8_t> bytes);
  Result<DeviceStream*> FindDevice(uint32_t device_id);

  Transport& transport_;
  StreamLayout layout_;
  CodecOptions codec_;
  std::map<uint32_t, DeviceStream> devices_;
  HashChain stream_digest_;  // of the preamble and every record header
  uint64_t records_ = 0;
  uint64_t ram_pages_ = 0;
  bool finished_ = false;
  Status error_;  // sticky: a failed write leaves the stream unusable
};

}  // namespace converge

#endif  // CONVERGE_IO_STREAM_WRITER_H_
