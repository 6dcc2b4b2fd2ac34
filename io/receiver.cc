#include "io/receiver.h"

#include <cstring>
#include <string>

namespace converge {

Status KernelDeviceSink::WriteDeviceBytes(uint32_t device_id,
                                          std::span<const uint8_t> bytes) {
  auto it = fds_.find(device_id);
  if (it == fds_.end()) {
    return InvalidArgumentError("no data_fd for device " +
                                std::to_string(device_id));
  }
  while (!bytes.empty()) {
    Result<size_t> n = kernel_.Write(it->second, bytes.data(), bytes.size());
    if (!n.ok()) {
      return n.status().WithContext("write data_fd of device " +
                                    std::to_string(device_id));
    }
    if (*n == 0) {
      return IoError("write data_fd of device " + std::to_string(device_id) +
                     ": wrote 0 bytes");
    }
    bytes = bytes.subspan(*n);
  }
  return OkStatus();
}

Receiver::Receiver(Transport& transport, std::vector<GuestRegion> regions,
                   DeviceSink& devices, ReceiverOptions options)
    : transport_(transport),
      regions_(std::move(regions)),
      devices_(devices),
      options_(std::move(options)) {}

Status Receiver::CheckLayout(const StreamLayout& layout) const {
  if (layout.regions.size() != regions_.size()) {
    return InvalidArgumentError(
        "stream has " + std::to_string(layout.regions.size()) +
        " RAM regions, destination has " + std::to_string(regions_.size()));
  }
  for (size_t i = 0; i < regions_.size(); ++i) {
    const StreamRegion& s = layout.regions[i];
    const GuestRegion& d = regions_[i];
    if (s.gpa != d.gpa || s.size_bytes != d.size_bytes || d.host == nullptr) {
      return InvalidArgumentError(
          "stream region " + std::to_string(i) + " (gpa " +
          std::to_string(s.gpa) + ", " + std::to_string(s.size_bytes) +
          " bytes) differs from the destination's (gpa " +
          std::to_string(d.gpa) + ", " + std::to_string(d.size_bytes) +
          " bytes)");
    }
  }
  for (const DeviceInfo& dev : layout.devices) {
    if (!devices_.HasDevice(dev.id)) {
      return InvalidArgumentError("stream device " + std::to_string(dev.id) +
                                  " (" + dev.name +
                                  ") has no destination data_fd");
    }
  }
  return OkStatus();
}

Status Receiver::Apply(const StreamRecord& record, uint32_t page_size) {
  switch (record.type) {
    case RecordType::kRam: {
      const RamRecord& ram = record.ram;
      uint8_t* dst = regions_[ram.region].host + ram.first_page * page_size;
      const uint8_t* src = record.data.data();
      for (uint32_t i = 0; i < ram.page_count; ++i, dst += page_size) {
        if (ZeroMapTest(ram.zero_map, i)) {
          std::memset(dst, 0, page_size);
        } else {
          std::memcpy(dst, src, page_size);
          src += page_size;
        }
      }
      summary_.ram_pages += ram.page_count;
      summary_.zero_pages += ram.page_count - ram.data_pages;
      return OkStatus();
    }
    case RecordType::kDeviceData:
      CONVERGE_RETURN_IF_ERROR(
          devices_.WriteDeviceBytes(record.device.device_id, record.data));
      summary_.device_bytes[record.device.device_id] += record.data.size();
      return OkStatus();
    case RecordType::kIterationMark:
      summary_.last_iteration = record.mark.iteration;
      return OkStatus();
    case RecordType::kEndOfStream:
      summary_.complete = true;
      return OkStatus();
    case RecordType::kStreamHeader:
    case RecordType::kEndOfDevice:
      return OkStatus();
  }
  return OkStatus();
}

Status Receiver::RunStream() {
  CONVERGE_ASSIGN_OR_RETURN(std::unique_ptr<StreamReader> reader,
                            StreamReader::Open(transport_));
  CONVERGE_RETURN_IF_ERROR(CheckLayout(reader->layout()));
  for (const DeviceInfo& dev : reader->layout().devices) {
    summary_.device_bytes[dev.id] = 0;
  }
  summary_.records = 1;
  while (!reader->finished()) {
    CONVERGE_ASSIGN_OR_RETURN(const StreamRecord* record, reader->Next());
    CONVERGE_RETURN_IF_ERROR(Apply(*record, reader->layout().page_size));
    ++summary_.records;
    summary_.stream_bytes = reader->bytes_read();
    if (options_.progress && options_.progress_every_records > 0 &&
        summary_.records % options_.progress_every_records == 0) {
      options_.progress(summary_);
    }
  }
  return OkStatus();
}

Result<ReceiveSummary> Receiver::Run() {
  summary_ = ReceiveSummary{};
  Status s = RunStream();
  summary_.error = s;
  if (options_.progress) options_.progress(summary_);
  if (!s.ok()) return s;
  return summary_;
}

}  // namespace converge
