#include "io/stream_reader.h"

#include <xxhash.h>

#include <cassert>
#include <string>

namespace converge {
namespace {

bool KnownType(uint8_t t) {
  return t >= static_cast<uint8_t>(RecordType::kStreamHeader) &&
         t <= static_cast<uint8_t>(RecordType::kEndOfStream);
}

}  // namespace

StreamReader::StreamReader(Transport& transport) : transport_(transport) {}

StreamReader::~StreamReader() = default;

Status StreamReader::Error(std::string_view what) const {
  std::string type = KnownType(static_cast<uint8_t>(header_.type))
                         ? std::string(RecordTypeName(header_.type))
                         : "type " + std::to_string(
                                         static_cast<int>(header_.type));
  return CorruptError("record " + std::to_string(next_index_) + " (" + type +
                      ") at byte offset " + std::to_string(offset_) + ": " +
                      std::string(what));
}

Result<std::unique_ptr<StreamReader>> StreamReader::Open(Transport& transport) {
  std::unique_ptr<StreamReader> r(new StreamReader(transport));
  uint8_t preamble[kPreambleBytes];
  CONVERGE_ASSIGN_OR_RETURN(size_t n, ReadFull(transport, preamble));
  if (n < kPreambleBytes) {
    return CorruptError("truncated: stream of " + std::to_string(n) +
                        " bytes ends inside the 16-byte preamble");
  }
  CONVERGE_RETURN_IF_ERROR(ParsePreamble(preamble));
  r->stream_digest_.Add(preamble);
  r->offset_ = kPreambleBytes;
  CONVERGE_RETURN_IF_ERROR(r->ReadRecord());
  if (r->header_.type != RecordType::kStreamHeader) {
    return r->Error("the first record must be the stream header");
  }
  Result<StreamLayout> layout = ParseStreamHeader(r->payload_);
  if (!layout.ok()) return r->Error(layout.status().message());
  r->layout_ = std::move(layout).value();
  for (const DeviceInfo& d : r->layout_.devices) r->devices_[d.id];
  r->Commit();
  return r;
}

// Reads one record's header and payload and checks the framing: length,
// index, type, encoding and checksum.
Status StreamReader::ReadRecord() {
  header_ = RecordHeader{};
  CONVERGE_ASSIGN_OR_RETURN(size_t n, ReadFull(transport_, header_bytes_));
  if (n == 0) {
    return CorruptError("truncated: stream ends at byte offset " +
                        std::to_string(offset_) + " before end-of-stream");
  }
  header_ = DecodeRecordHeader(header_bytes_);
  if (n < kRecordHeaderBytes) {
    return Error("truncated in the record header (" + std::to_string(n) +
                 " of 24 bytes)");
  }
  if (!KnownType(header_bytes_[0])) return Error("unknown record type");
  if (GetU16(header_bytes_ + 2) != 0) return Error("reserved field not zero");
  if (header_.payload_bytes > kMaxRecordPayloadBytes) {
    return Error("length " + std::to_string(header_.payload_bytes) +
                 " over the limit of " +
                 std::to_string(kMaxRecordPayloadBytes) + " bytes");
  }
  if (header_.index != next_index_) {
    return Error("record index " + std::to_string(header_.index) +
                 " out of order (reordered, duplicated or missing record)");
  }
  const uint8_t enc = header_bytes_[1];
  const bool compressible = header_.type == RecordType::kRam ||
                            header_.type == RecordType::kDeviceData;
  if (enc > static_cast<uint8_t>(Codec::kZstd) || (!compressible && enc != 0)) {
    return Error("unknown encoding " + std::to_string(enc));
  }
  payload_.resize(header_.payload_bytes);
  CONVERGE_ASSIGN_OR_RETURN(size_t got, ReadFull(transport_, payload_));
  if (got < payload_.size()) {
    return Error("truncated: payload has " + std::to_string(got) + " of " +
                 std::to_string(payload_.size()) + " bytes");
  }
  const std::span<const uint8_t> parts[] = {payload_};
  if (RecordChecksum(header_bytes_, parts) != header_.checksum) {
    return Error("checksum mismatch");
  }
  return OkStatus();
}

Result<StreamReader::DeviceStream*> StreamReader::FindDevice(
    uint32_t device_id) {
  auto it = devices_.find(device_id);
  if (it == devices_.end()) {
    return Error("unknown device id " + std::to_string(device_id));
  }
  if (it->second.ended) {
    return Error("device " + std::to_string(device_id) +
                 " sends after its end-of-device");
  }
  return &it->second;
}

Status StreamReader::Verify() {
  StreamRecord& rec = record_;
  rec = StreamRecord{};
  rec.type = header_.type;
  rec.index = header_.index;
  rec.offset = offset_;
  rec.encoding = header_.encoding;
  switch (header_.type) {
    case RecordType::kStreamHeader:
      return Error("a second stream header");
    case RecordType::kRam: {
      Result<RamRecord> ram = ParseRamPayload(payload_, layout_.page_size);
      if (!ram.ok()) return Error(ram.status().message());
      rec.ram = *ram;
      if (rec.ram.region >= layout_.regions.size()) {
        return Error("region " + std::to_string(rec.ram.region) +
                     " not in the stream header");
      }
      const uint64_t region_pages =
          layout_.regions[rec.ram.region].size_bytes / layout_.page_size;
      if (rec.ram.first_page > region_pages ||
          rec.ram.page_count > region_pages - rec.ram.first_page) {
        return Error("pages [" + std::to_string(rec.ram.first_page) + ", +" +
                     std::to_string(rec.ram.page_count) +
                     ") out of range of region " +
                     std::to_string(rec.ram.region) + " (" +
                     std::to_string(region_pages) + " pages)");
      }
      data_.resize(size_t{rec.ram.data_pages} * layout_.page_size);
      Status s = DecodeChunk(header_.encoding, rec.ram.body, data_);
      if (!s.ok()) return Error(s.message());
      rec.data = data_;
      return OkStatus();
    }
    case RecordType::kDeviceData: {
      Result<DeviceDataRecord> dev = ParseDevicePayload(payload_);
      if (!dev.ok()) return Error(dev.status().message());
      rec.device = *dev;
      CONVERGE_ASSIGN_OR_RETURN(DeviceStream * ds,
                                FindDevice(rec.device.device_id));
      if (rec.device.sequence != ds->chunks) {
        return Error("sequence gap on device " +
                     std::to_string(rec.device.device_id) + ": got " +
                     std::to_string(rec.device.sequence) + ", expected " +
                     std::to_string(ds->chunks));
      }
      data_.resize(rec.device.uncompressed_bytes);
      Status s = DecodeChunk(header_.encoding, rec.device.body, data_);
      if (!s.ok()) return Error(s.message());
      rec.data = data_;
      return OkStatus();
    }
    case RecordType::kIterationMark: {
      Result<IterationMark> mark = ParseIterationMark(payload_);
      if (!mark.ok()) return Error(mark.status().message());
      rec.mark = *mark;
      return OkStatus();
    }
    case RecordType::kEndOfDevice: {
      Result<EndOfDevice> end = ParseEndOfDevice(payload_);
      if (!end.ok()) return Error(end.status().message());
      rec.end_of_device = *end;
      CONVERGE_ASSIGN_OR_RETURN(DeviceStream * ds, FindDevice(end->device_id));
      if (end->total_bytes != ds->bytes || end->chunk_count != ds->chunks) {
        return Error("device " + std::to_string(end->device_id) + " sent " +
                     std::to_string(ds->bytes) + " bytes in " +
                     std::to_string(ds->chunks) + " chunks, end-of-device says " +
                     std::to_string(end->total_bytes) + " in " +
                     std::to_string(end->chunk_count));
      }
      if (end->digest != ds->digest.Digest()) {
        return Error("device " + std::to_string(end->device_id) +
                     " digest mismatch (the chunks decode to other bytes)");
      }
      return OkStatus();
    }
    case RecordType::kEndOfStream: {
      Result<EndOfStream> end = ParseEndOfStream(payload_);
      if (!end.ok()) return Error(end.status().message());
      rec.end_of_stream = *end;
      if (end->record_count != next_index_) {
        return Error("record count " + std::to_string(end->record_count) +
                     ", read " + std::to_string(next_index_));
      }
      if (end->ram_pages != ram_pages_) {
        return Error("RAM page total " + std::to_string(end->ram_pages) +
                     ", read " + std::to_string(ram_pages_));
      }
      if (end->digest != stream_digest_.Digest()) {
        return Error("stream digest mismatch");
      }
      std::vector<DeviceTotal> totals;
      for (const auto& [id, ds] : devices_) {
        if (!ds.ended) {
          return Error("device " + std::to_string(id) +
                       " has no end-of-device record");
        }
        totals.push_back({id, ds.bytes});
      }
      if (end->devices != totals) return Error("per-device byte totals differ");
      return OkStatus();
    }
  }
  return Error("unknown record type");
}

void StreamReader::Commit() {
  switch (record_.type) {
    case RecordType::kRam:
      ram_pages_ += record_.ram.page_count;
      break;
    case RecordType::kDeviceData: {
      DeviceStream& ds = devices_[record_.device.device_id];
      ds.digest.Add(XXH3_64bits(record_.data.data(), record_.data.size()));
      ds.bytes += record_.data.size();
      ++ds.chunks;
      break;
    }
    case RecordType::kEndOfDevice:
      devices_[record_.end_of_device.device_id].ended = true;
      break;
    case RecordType::kEndOfStream:
      finished_ = true;
      break;
    case RecordType::kStreamHeader:
    case RecordType::kIterationMark:
      break;
  }
  stream_digest_.Add(header_bytes_);
  offset_ += kRecordHeaderBytes + payload_.size();
  ++next_index_;
}

Result<const StreamRecord*> StreamReader::Next() {
  assert(!finished_);
  if (finished_) return FailedPreconditionError("stream already finished");
  if (failed_) return FailedPreconditionError("stream already failed");
  Status s = ReadRecord();
  if (s.ok()) s = Verify();
  if (!s.ok()) {
    failed_ = true;
    return s;
  }
  Commit();
  return &record_;
}

uint64_t StreamReader::device_bytes(uint32_t device_id) const {
  auto it = devices_.find(device_id);
  return it == devices_.end() ? 0 : it->second.bytes;
}

}  // namespace converge
