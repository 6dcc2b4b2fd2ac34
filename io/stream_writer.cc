#include "io/stream_writer.h"

#include <cassert>
#include <string>

namespace converge {

StreamWriter::StreamWriter(Transport& transport, StreamLayout layout,
                           CodecOptions codec)
    : transport_(transport), layout_(std::move(layout)), codec_(codec) {
  for (const DeviceInfo& d : layout_.devices) devices_[d.id];
}

StreamWriter::~StreamWriter() = default;

Result<std::unique_ptr<StreamWriter>> StreamWriter::Create(
    Transport& transport, const StreamLayout& layout,
    const CodecOptions& codec) {
  CONVERGE_RETURN_IF_ERROR(ValidateLayout(layout));
  std::unique_ptr<StreamWriter> w(new StreamWriter(transport, layout, codec));
  uint8_t preamble[kPreambleBytes];
  EncodePreamble(preamble);
  CONVERGE_RETURN_IF_ERROR(w->Emit(preamble));
  w->stream_digest_.Add(preamble);
  CONVERGE_RETURN_IF_ERROR(
      w->WriteRecord(RecordType::kStreamHeader, EncodeStreamHeader(layout)));
  return w;
}

Status StreamWriter::Emit(std::span<const uint8_t> bytes) {
  Status s = transport_.Write(bytes);
  if (!s.ok()) return error_ = s.WithContext("stream writer");
  return OkStatus();
}

Status StreamWriter::WriteRecord(
    RecordType type, Codec encoding,
    std::span<const std::span<const uint8_t>> parts, uint64_t payload_xxh3) {
  CONVERGE_RETURN_IF_ERROR(error_);
  if (finished_) return FailedPreconditionError("stream already finished");
  size_t payload_bytes = 0;
  for (const auto& p : parts) payload_bytes += p.size();
  if (payload_bytes > kMaxRecordPayloadBytes) {
    return InvalidArgumentError(std::string(RecordTypeName(type)) +
                                " payload of " + std::to_string(payload_bytes) +
                                " bytes over the record limit");
  }
  RecordHeader h;
  h.type = type;
  h.encoding = encoding;
  h.payload_bytes = static_cast<uint32_t>(payload_bytes);
  h.index = records_;
  uint8_t header[kRecordHeaderBytes];
  EncodeRecordHeader(h, header);
  h.checksum = RecordChecksum(header, payload_xxh3);
  EncodeRecordHeader(h, header);
  CONVERGE_RETURN_IF_ERROR(Emit(header));
  for (const auto& p : parts) {
    if (!p.empty()) CONVERGE_RETURN_IF_ERROR(Emit(p));
  }
  stream_digest_.Add(header);
  ++records_;
  return OkStatus();
}

Status StreamWriter::WriteRecord(RecordType type,
                                 std::span<const uint8_t> payload) {
  const std::span<const uint8_t> parts[] = {payload};
  return WriteRecord(type, Codec::kNone, parts, PayloadXxh3(parts));
}

Result<StreamWriter::DeviceStream*> StreamWriter::FindDevice(
    uint32_t device_id) {
  auto it = devices_.find(device_id);
  if (it == devices_.end()) {
    return InvalidArgumentError("device " + std::to_string(device_id) +
                                " is not in the stream header");
  }
  if (it->second.ended) {
    return FailedPreconditionError("device " + std::to_string(device_id) +
                                   " already ended");
  }
  return &it->second;
}

Status StreamWriter::WriteRam(const EncodedPayload& payload) {
  assert(payload.head.size() >= kRamFixedBytes);
  const uint32_t region = GetU32(payload.head.data());
  const uint32_t pages = GetU32(payload.head.data() + 4);
  const uint64_t first = GetU64(payload.head.data() + 8);
  if (region >= layout_.regions.size() ||
      first + pages > layout_.regions[region].size_bytes / layout_.page_size) {
    return OutOfRangeError("RAM pages [" + std::to_string(first) + ", +" +
                           std::to_string(pages) + ") outside region " +
                           std::to_string(region));
  }
  const std::span<const uint8_t> parts[] = {payload.head, payload.body};
  CONVERGE_RETURN_IF_ERROR(WriteRecord(RecordType::kRam, payload.encoding,
                                       parts, payload.payload_xxh3));
  ram_pages_ += pages;
  return OkStatus();
}

Status StreamWriter::WriteRamPages(uint32_t region, uint64_t first_page,
                                   uint32_t page_count, const uint8_t* pages) {
  EncodedPayload payload;
  CONVERGE_RETURN_IF_ERROR(EncodeRamPayload(codec_, region, first_page,
                                            page_count, layout_.page_size,
                                            pages, payload));
  return WriteRam(payload);
}

uint64_t StreamWriter::next_sequence(uint32_t device_id) const {
  auto it = devices_.find(device_id);
  return it == devices_.end() ? 0 : it->second.chunks;
}

uint64_t StreamWriter::device_bytes_written(uint32_t device_id) const {
  auto it = devices_.find(device_id);
  return it == devices_.end() ? 0 : it->second.bytes;
}

Status StreamWriter::WriteDeviceData(uint32_t device_id,
                                     const EncodedPayload& payload) {
  CONVERGE_ASSIGN_OR_RETURN(DeviceStream * ds, FindDevice(device_id));
  assert(payload.head.size() == kDeviceDataFixedBytes);
  const uint64_t sequence = GetU64(payload.head.data() + 8);
  if (sequence != ds->chunks) {
    return InvalidArgumentError("device " + std::to_string(device_id) +
                                " chunk has sequence " +
                                std::to_string(sequence) + ", expected " +
                                std::to_string(ds->chunks));
  }
  const std::span<const uint8_t> parts[] = {payload.head, payload.body};
  CONVERGE_RETURN_IF_ERROR(WriteRecord(RecordType::kDeviceData,
                                       payload.encoding, parts,
                                       payload.payload_xxh3));
  ds->digest.Add(payload.data_xxh3);
  ds->bytes += payload.uncompressed_bytes;
  ++ds->chunks;
  return OkStatus();
}

Status StreamWriter::WriteDeviceChunk(uint32_t device_id,
                                      std::span<const uint8_t> data) {
  EncodedPayload payload;
  CONVERGE_RETURN_IF_ERROR(EncodeDevicePayload(
      codec_, device_id, next_sequence(device_id), data, payload));
  return WriteDeviceData(device_id, payload);
}

Status StreamWriter::WriteIterationMark(uint64_t iteration,
                                        uint64_t timestamp_ns) {
  return WriteRecord(RecordType::kIterationMark,
                     EncodeIterationMark({iteration, timestamp_ns}));
}

Status StreamWriter::EndDevice(uint32_t device_id) {
  CONVERGE_ASSIGN_OR_RETURN(DeviceStream * ds, FindDevice(device_id));
  CONVERGE_RETURN_IF_ERROR(WriteRecord(
      RecordType::kEndOfDevice,
      EncodeEndOfDevice(
          {device_id, ds->bytes, ds->chunks, ds->digest.Digest()})));
  ds->ended = true;
  return OkStatus();
}

Status StreamWriter::Finish() {
  EndOfStream end;
  end.record_count = records_;
  end.ram_pages = ram_pages_;
  end.digest = stream_digest_.Digest();
  for (const auto& [id, ds] : devices_) end.devices.push_back({id, ds.bytes});
  CONVERGE_RETURN_IF_ERROR(
      WriteRecord(RecordType::kEndOfStream, EncodeEndOfStream(end)));
  finished_ = true;
  return transport_.Flush();
}

}  // namespace converge
