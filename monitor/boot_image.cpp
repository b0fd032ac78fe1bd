#include "monitor/boot_image.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

namespace bt86 {

ImageFile read_image_file(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    throw ImageFileError(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) throw ImageFileError(fmt::format("'{}' is not a regular file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImageFileError(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  ImageFile file{path, {}};
  file.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) throw ImageFileError(fmt::format("error while reading '{}'", path));
  return file;
}

}  // namespace bt86
