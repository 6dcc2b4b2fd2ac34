// Writes small valid streams covering every record type and codec into a
// directory: the seed corpus of stream_reader_fuzzer.
//   make_stream_corpus <dir>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "io/stream_writer.h"
#include "io/transport.h"

namespace converge {
namespace {

std::vector<uint8_t> Pattern(size_t bytes, uint32_t seed, bool text) {
  std::vector<uint8_t> v(bytes);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < bytes; ++i) {
    x = x * 1103515245u + 12345u;
    v[i] = text ? static_cast<uint8_t>("converge "[(x >> 16) % 9])
                : static_cast<uint8_t>(x >> 24);
  }
  return v;
}

Status Write(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return ErrnoStatus(errno, "open " + path);
  const size_t n = std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  if (n != bytes.size()) return IoError("short write to " + path);
  return OkStatus();
}

Result<std::vector<uint8_t>> Stream(Codec codec, int devices, bool ram,
                                    uint32_t seed) {
  StreamLayout layout;
  layout.page_size = 512;
  layout.regions = {{0, 8 * 512}, {1 << 20, 4 * 512}};
  for (int i = 0; i < devices; ++i) {
    layout.devices.push_back(
        {static_cast<uint32_t>(i + 1), 0, "dev" + std::to_string(i)});
  }
  MemoryTransport t;
  CONVERGE_ASSIGN_OR_RETURN(auto w, StreamWriter::Create(t, layout, {codec, 1}));
  CONVERGE_RETURN_IF_ERROR(w->WriteIterationMark(1, 1000));
  if (ram) {
    std::vector<uint64_t> words(4 * 512 / 8);
    auto* pages = reinterpret_cast<uint8_t*>(words.data());
    const std::vector<uint8_t> text = Pattern(512, seed, true);
    std::memcpy(pages, text.data(), 512);  // page 0 text, 1 zero
    const std::vector<uint8_t> noise = Pattern(1024, seed + 1, false);
    std::memcpy(pages + 1024, noise.data(), 1024);  // pages 2-3 random
    CONVERGE_RETURN_IF_ERROR(w->WriteRamPages(0, 2, 4, pages));
    CONVERGE_RETURN_IF_ERROR(w->WriteRamPages(1, 0, 1, pages + 512));
  }
  for (int i = 0; i < devices; ++i) {
    const uint32_t id = static_cast<uint32_t>(i + 1);
    CONVERGE_RETURN_IF_ERROR(w->WriteDeviceChunk(id, Pattern(300, seed + id, true)));
    CONVERGE_RETURN_IF_ERROR(w->WriteDeviceChunk(id, Pattern(100, seed + id, false)));
    CONVERGE_RETURN_IF_ERROR(w->EndDevice(id));
  }
  CONVERGE_RETURN_IF_ERROR(w->WriteIterationMark(2, 2000));
  CONVERGE_RETURN_IF_ERROR(w->Finish());
  return t.data();
}

int Main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  struct Seed {
    const char* name;
    Codec codec;
    int devices;
    bool ram;
  };
  const Seed seeds[] = {
      {"empty", Codec::kNone, 0, false},   {"ram-none", Codec::kNone, 0, true},
      {"ram-lz4", Codec::kLz4, 0, true},   {"ram-zstd", Codec::kZstd, 0, true},
      {"dev1-lz4", Codec::kLz4, 1, false}, {"dev2-zstd", Codec::kZstd, 2, true},
      {"dev3-none", Codec::kNone, 3, true},
  };
  uint32_t seed = 1;
  for (const Seed& s : seeds) {
    Result<std::vector<uint8_t>> bytes = Stream(s.codec, s.devices, s.ram, seed++);
    Status st = bytes.ok() ? Write(dir + "/" + s.name, *bytes) : bytes.status();
    if (!st.ok()) {
      std::fprintf(stderr, "%s: %s\n", s.name, st.ToString().c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace
}  // namespace converge

int main(int argc, char** argv) { return converge::Main(argc, argv); }
