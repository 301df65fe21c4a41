// Two small things Node cannot do without ioctl/madvise. trimReadOnlyFilePages drops this process's resident pages of read-only file mappings (the node binary's start-up code and data, shared
// libraries) that were never written: the kernel maps them in again from the page cache when they are next used.
// Only mappings that are private, not writable and hold no copied-on-write page are touched, so no content can be
// lost (a RELRO section, written at load time, holds anonymous pages and is skipped). The watchdog functions drive a
// Linux watchdog device (/dev/watchdog) as Patroni does: open, set the timeout, keep alive, magic close.
#include <fcntl.h>
#include <linux/watchdog.h>
#include <node_api.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>

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

napi_value ThrowErrno(napi_env env, const std::string& what, int error) {
  const std::string message = what + ": " + std::strerror(error);
  napi_throw_error(env, error == ENOTTY ? "ENOTTY" : nullptr, message.c_str());
  return nullptr;
}

bool ReadArgs(napi_env env, napi_callback_info info, size_t expected, napi_value* args) {
  size_t count = expected;
  return napi_get_cb_info(env, info, &count, args, nullptr, nullptr) == napi_ok && count == expected;
}

// watchdogOpen(path, timeoutSeconds) -> { fd, timeout }: the timeout the driver accepted (it may round it).
napi_value WatchdogOpen(napi_env env, napi_callback_info info) {
  napi_value args[2];
  if (!ReadArgs(env, info, 2, args)) return ThrowErrno(env, "watchdogOpen(path, timeoutSeconds)", EINVAL);
  char path[1024];
  size_t length = 0;
  int32_t timeout = 0;
  if (napi_get_value_string_utf8(env, args[0], path, sizeof path, &length) != napi_ok ||
      napi_get_value_int32(env, args[1], &timeout) != napi_ok)
    return ThrowErrno(env, "watchdogOpen(path, timeoutSeconds)", EINVAL);
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, std::string("open ") + path, errno);
  if (ioctl(fd, WDIOC_SETTIMEOUT, &timeout) != 0) {
    const int error = errno;
    // Not started as a watchdog unless it is one; the magic character stops one that does not support SETTIMEOUT.
    (void)!write(fd, "V", 1);
    close(fd);
    return ThrowErrno(env, std::string("ioctl WDIOC_SETTIMEOUT on ") + path, error);
  }
  napi_value result;
  napi_value fdValue;
  napi_value timeoutValue;
  napi_create_object(env, &result);
  napi_create_int32(env, fd, &fdValue);
  napi_create_int32(env, timeout, &timeoutValue);
  napi_set_named_property(env, result, "fd", fdValue);
  napi_set_named_property(env, result, "timeout", timeoutValue);
  return result;
}

// watchdogKeepalive(fd): WDIOC_KEEPALIVE.
napi_value WatchdogKeepalive(napi_env env, napi_callback_info info) {
  napi_value args[1];
  int32_t fd = -1;
  if (!ReadArgs(env, info, 1, args) || napi_get_value_int32(env, args[0], &fd) != napi_ok)
    return ThrowErrno(env, "watchdogKeepalive(fd)", EINVAL);
  int ignored = 0;
  if (ioctl(fd, WDIOC_KEEPALIVE, &ignored) != 0) return ThrowErrno(env, "ioctl WDIOC_KEEPALIVE", errno);
  return nullptr;
}

// watchdogClose(fd): the magic close ('V' then close) that stops the timer on drivers without nowayout.
napi_value WatchdogClose(napi_env env, napi_callback_info info) {
  napi_value args[1];
  int32_t fd = -1;
  if (!ReadArgs(env, info, 1, args) || napi_get_value_int32(env, args[0], &fd) != napi_ok)
    return ThrowErrno(env, "watchdogClose(fd)", EINVAL);
  const bool isWritten = write(fd, "V", 1) == 1;
  const int error = errno;
  close(fd);
  if (!isWritten) return ThrowErrno(env, "magic close of the watchdog", error);
  return nullptr;
}

void Export(napi_env env, napi_value exports, const char* name, napi_callback callback) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, callback, nullptr, &fn);
  napi_set_named_property(env, exports, name, fn);
}

napi_value Init(napi_env env, napi_value exports) {
  Export(env, exports, "trimReadOnlyFilePages", TrimReadOnlyFilePages);
  Export(env, exports, "watchdogOpen", WatchdogOpen);
  Export(env, exports, "watchdogKeepalive", WatchdogKeepalive);
  Export(env, exports, "watchdogClose", WatchdogClose);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
