// What the loaders consume and how they fail.
//
// A loader takes whole files in memory (kernels and initrds are at most tens
// of MiB) so that parsing is plain bounds-checked indexing and tests can hand
// it synthetic images without touching the file system. ImageError means
// the file was read but is not something bt86 can boot (the CLI exits with
// kBadImage); ImageFileError means it could not be read at all (kUsage).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bt86 {

class ImageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ImageFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ImageFile {
  std::string path;  // For messages only.
  std::vector<uint8_t> bytes;
};

struct BootImages {
  ImageFile kernel;
  std::optional<ImageFile> initrd;
  std::string cmdline;
};

// Reads a whole regular file. Throws ImageFileError naming the path and the
// reason (missing, a directory, unreadable).
ImageFile read_image_file(const std::string& path);

}  // namespace bt86
