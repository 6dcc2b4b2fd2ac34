// StreamReader: reads and completely verifies records of the converge wire
// format from a Transport, one at a time, before handing them out.
//
// Each record is checked before Next() returns it: length under the cap,
// index in order, checksum, a known type and encoding, pages inside the
// stream header's regions, a known device id, the next sequence number, and
// a decompressed size equal to the declared one. End-of-device and
// end-of-stream totals and digests are compared with what was read. Errors
// name the record (index, type) and its byte offset. The reader never holds
// more than one record: memory stays under about twice kMaxChunkBytes
// whatever the input.
//
// Thread-safety: none; one thread at a time.

#ifndef CONVERGE_IO_STREAM_READER_H_
#define CONVERGE_IO_STREAM_READER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/transport.h"
#include "io/wire_format.h"

namespace converge {

// One verified record. The spans point into the reader and stay valid until
// the next call to Next().
struct StreamRecord {
  RecordType type = RecordType::kStreamHeader;
  uint64_t index = 0;
  uint64_t offset = 0;  // byte offset of the record header in the stream
  Codec encoding = Codec::kNone;
  RamRecord ram;                    // kRam (ram.body is the encoded form)
  DeviceDataRecord device;          // kDeviceData (device.body encoded)
  std::span<const uint8_t> data;    // kRam: the data pages; kDeviceData: bytes
  IterationMark mark;               // kIterationMark
  EndOfDevice end_of_device;        // kEndOfDevice
  EndOfStream end_of_stream;        // kEndOfStream
};

class StreamReader {
 public:
  // Reads and verifies the preamble and the stream header record.
  [[nodiscard]] static Result<std::unique_ptr<StreamReader>> Open(
      Transport& transport);

  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;
  ~StreamReader();

  const StreamLayout& layout() const { return layout_; }

  // The next verified record; the last one is kEndOfStream. A truncated or
  // malformed stream is kCorrupt.
  // REQUIRES: !finished().
  [[nodiscard]] Result<const StreamRecord*> Next();
  bool finished() const { return finished_; }

  uint64_t bytes_read() const { return offset_; }
  uint64_t device_bytes(uint32_t device_id) const;

 private:
  struct DeviceStream {
    uint64_t bytes = 0;
    uint64_t chunks = 0;
    bool ended = false;
    HashChain digest;  // of the chunks' XXH3-64s
  };

  explicit StreamReader(Transport& transport);
  Status ReadRecord();
  Status Verify();  // the type-specific checks; commits nothing
  void Commit();    // updates totals after Verify() passed
  Status Error(std::string_view what) const;
  Result<DeviceStream*> FindDevice(uint32_t device_id);

  Transport& transport_;
  StreamLayout layout_;
  std::map<uint32_t, DeviceStream> devices_;
  HashChain stream_digest_;  // of the preamble and every record header
  uint64_t offset_ = 0;       // bytes consumed (verified records)
  uint64_t next_index_ = 0;
  uint64_t ram_pages_ = 0;
  bool finished_ = false;
  bool failed_ = false;
  uint8_t header_bytes_[kRecordHeaderBytes] = {};
  RecordHeader header_;
  std::vector<uint8_t> payload_;
  std::vector<uint8_t> data_;
  StreamRecord record_;
};

}  // namespace converge

#endif  // CONVERGE_IO_STREAM_READER_H_
