// Drops this process's resident pages of read-only file mappings (the node binary's start-up code and data, shared
// libraries) that were never written: the kernel maps them in again from the page cache when they are next used.
// Only mappings that are private, not writable and hold no copied-on-write page are touched, so no content can be
// lost (a RELRO section, written at load time, holds anonymous pages and is skipped).
#include <node_api.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>

namespace {

struct Mapping {
  unsigned long start = 0;
  unsigned long end = 0;
  bool isCandidate = false;
};

bool IsMappingHeader(const char* line, Mapping* mapping) {
  unsigned long start = 0;
  unsigned long end = 0;
  char perms[8] = {0};
  if (std::sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3) return false;
  mapping->start = start;
  mapping->end = end;
  // "r-xp" / "r--p": readable, not writable, private; file-backed when the line names a path.
  mapping->isCandidate = perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && std::strchr(line, '/') != nullptr;
  return true;
}

napi_value TrimReadOnlyFilePages(napi_env env, napi_callback_info /*info*/) {
  double trimmedBytes = 0;
  std::FILE* smaps = std::fopen("/proc/self/smaps", "r");
  if (smaps != nullptr) {
    char line[4096];
    Mapping mapping;
    while (std::fgets(line, sizeof line, smaps) != nullptr) {
      if (IsMappingHeader(line, &mapping)) continue;
      unsigned long anonymousKb = 0;
      if (!mapping.isCandidate || std::sscanf(line, "Anonymous: %lu kB", &anonymousKb) != 1) continue;
      if (anonymousKb == 0 &&
          madvise(reinterpret_cast<void*>(mapping.start), mapping.end - mapping.start, MADV_DONTNEED) == 0) {
        trimmedBytes += static_cast<double>(mapping.end - mapping.start);
      }
      mapping.isCandidate = false;
    }
    std::fclose(smaps);
  }
  napi_value result;
  napi_create_double(env, trimmedBytes, &result);
  return result;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "trimReadOnlyFilePages", NAPI_AUTO_LENGTH, TrimReadOnlyFilePages, nullptr, &fn);
  napi_set_named_property(env, exports, "trimReadOnlyFilePages", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
