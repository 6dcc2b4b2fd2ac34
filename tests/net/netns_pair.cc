#include "tests/net/netns_pair.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace converge::testing {
namespace {

constexpr const char* kNetnsDir = "/var/run/netns/";
constexpr const char* kAddresses[2] = {"10.231.0.1", "10.231.0.2"};
constexpr int kCapSysAdmin = 21;
constexpr int kCapNetAdmin = 12;

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& arg : argv) {
    if (!line.empty()) line += ' ';
    line += arg;
  }
  return line;
}

// Reads both pipes until they close; output is small, but polling keeps a
// chatty command from blocking on a full pipe.
void Drain(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      sinks[i]->append(buf, size_t(n));
    }
  }
}

bool ExecutableInPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    if (::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// The effective capability set of this process, from /proc/self/status.
Result<uint64_t> EffectiveCapabilities() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      return std::strtoull(line.c_str() + 7, nullptr, 16);
    }
  }
  return NotSupportedError("no CapEff line in /proc/self/status");
}

}  // namespace

Result<std::string> RunCommand(const std::vector<std::string>& argv) {
  assert(!argv.empty());
  const std::string line = CommandLine(argv);
  int out_pipe[2];
  int err_pipe[2];
  CONVERGE_RETURN_IF_ERROR(SysCall("pipe for `" + line + "`", [&] {
    return ::pipe2(out_pipe, O_CLOEXEC);
  }));
  Result<long> err_ok = SysCall("pipe for `" + line + "`", [&] {
    return ::pipe2(err_pipe, O_CLOEXEC);
  });
  if (!err_ok.ok()) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return err_ok.status();
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int spawn_errno = ::posix_spawnp(&pid, args[0], &actions, nullptr,
                                         args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  std::string out;
  std::string err;
  if (spawn_errno == 0) Drain(out_pipe[0], err_pipe[0], out, err);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  if (spawn_errno != 0) return ErrnoStatus(spawn_errno, "run `" + line + "`");
  int wstatus = 0;
  CONVERGE_RETURN_IF_ERROR(RetryOnEintr([&] {
    return SysCall("wait for `" + line + "`",
                   [&] { return ::waitpid(pid, &wstatus, 0); });
  }));
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return out;
  std::string how = WIFEXITED(wstatus)
                        ? "exit status " + std::to_string(WEXITSTATUS(wstatus))
                        : "signal " + std::to_string(WTERMSIG(wstatus));
  while (!err.empty() && err.back() == '\n') err.pop_back();
  // An exec failure in the child (command not found) shows as exit 127.
  return IoError("`" + line + "` failed (" + how + "): " +
                 (err.empty() ? std::string("no error output") : err));
}

NetnsThread::~NetnsThread() {
  if (thread_.joinable()) thread_.join();
}

Status NetnsThread::Join() {
  assert(joinable());
  thread_.join();
  return *result_;
}

Status NetnsPair::Available() {
  Result<uint64_t> caps = EffectiveCapabilities();
  if (!caps.ok()) return caps.status();
  if ((*caps & (uint64_t{1} << kCapNetAdmin)) == 0) {
    return NotSupportedError("network namespace tests need CAP_NET_ADMIN");
  }
  if ((*caps & (uint64_t{1} << kCapSysAdmin)) == 0) {
    return NotSupportedError(
        "network namespace tests need CAP_SYS_ADMIN (setns, ip netns add)");
  }
  if (!ExecutableInPath("ip")) {
    return NotSupportedError(
        "network namespace tests need `ip` (iproute2) in PATH");
  }
  return OkStatus();
}

const char* NetnsPair::NamePrefix() { return "cvgnet-"; }

Result<int> NetnsPair::RemoveStaleNamespaces() {
  std::error_code ec;
  std::filesystem::directory_iterator it(kNetnsDir, ec);
  if (ec) return 0;  // no namespace was ever named on this machine
  const std::string prefix = NamePrefix();
  std::vector<std::string> stale;
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;
    stale.push_back(name);
  }
  int removed = 0;
  for (const std::string& name : stale) {
    Status deleted = RunCommand({"ip", "netns", "delete", name}).status();
    // A concurrent test process may have removed it first.
    if (!deleted.ok() && std::filesystem::exists(kNetnsDir + name, ec)) {
      return deleted;
    }
    removed += deleted.ok() ? 1 : 0;
  }
  return removed;
}

NetnsPair::NetnsPair(uint32_t serial) {
  const std::string pid = std::to_string(::getpid());
  const std::string n = std::to_string(serial);
  const char* suffix[2] = {"a", "b"};
  for (int i = 0; i < 2; ++i) {
    ns_[i] = NamePrefix() + pid + "-" + n + "-" + suffix[i];
    // IFNAMSIZ is 16: "c" + pid (<= 7 digits) + "n" + serial + side.
    if_[i] = "c" + pid + "n" + n + suffix[i];
  }
}

Result<std::unique_ptr<NetnsPair>> NetnsPair::Create(const Options& options) {
  CONVERGE_RETURN_IF_ERROR(Available());
  CONVERGE_RETURN_IF_ERROR(RemoveStaleNamespaces().status());
  static std::atomic<uint32_t> next_serial{0};
  std::unique_ptr<NetnsPair> pair(new NetnsPair(next_serial++));
  if (pair->if_[0].size() > 15) {
    return InternalError("interface name " + pair->if_[0] +
                         " is longer than IFNAMSIZ allows");
  }
  CONVERGE_RETURN_IF_ERROR(pair->Build(options));  // ~NetnsPair unwinds
  return pair;
}

Status NetnsPair::Build(const Options& options) {
  for (int i = 0; i < 2; ++i) {
    CONVERGE_RETURN_IF_ERROR(RunCommand({"ip", "netns", "add", ns_[i]}).status());
    created_[i] = true;
  }
  CONVERGE_RETURN_IF_ERROR(RunCommand({"ip", "link", "add", if_[0], "netns",
                                       ns_[0], "type", "veth", "peer", "name",
                                       if_[1], "netns", ns_[1]})
                               .status());
  for (int i = 0; i < 2; ++i) {
    const std::string cidr =
        std::string(kAddresses[i]) + "/" + std::to_string(kPrefixLength);
    CONVERGE_RETURN_IF_ERROR(
        RunCommand({"ip", "-n", ns_[i], "addr", "add", cidr, "dev", if_[i]})
            .status());
    CONVERGE_RETURN_IF_ERROR(
        RunCommand({"ip", "-n", ns_[i], "link", "set", "lo", "up"}).status());
  }
  CONVERGE_RETURN_IF_ERROR(RestoreLink());
  if (options.shaped) CONVERGE_RETURN_IF_ERROR(Shape(options.shape));
  return OkStatus();
}

NetnsPair::~NetnsPair() {
  for (int i = 0; i < 2; ++i) {
    if (!created_[i]) continue;
    Result<std::string> r = RunCommand({"ip", "netns", "delete", ns_[i]});
    if (!r.ok()) {
      std::fprintf(stderr, "NetnsPair: %s\n", r.status().ToString().c_str());
    }
  }
}

const std::string& NetnsPair::namespace_name(Side side) const {
  return ns_[int(side)];
}

const std::string& NetnsPair::interface_name(Side side) const {
  return if_[int(side)];
}

std::string NetnsPair::address(Side side) const {
  return kAddresses[int(side)];
}

NetnsThread NetnsPair::Spawn(Side side, std::function<Status()> fn) {
  NetnsThread t;
  t.result_ = std::make_unique<Status>();
  Status* out = t.result_.get();
  std::string path = kNetnsDir + ns_[int(side)];
  t.thread_ = std::thread([out, path = std::move(path), fn = std::move(fn)] {
    Result<long> fd = SysCall("open " + path, [&] {
      return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    });
    if (!fd.ok()) {
      *out = fd.status();
      return;
    }
    // Network namespaces are per thread: only this thread moves.
    Result<long> entered = SysCall("setns " + path, [&] {
      return ::setns(int(*fd), CLONE_NEWNET);
    });
    ::close(int(*fd));
    if (!entered.ok()) {
      *out = entered.status();
      return;
    }
    *out = fn();
  });
  return t;
}

Status NetnsPair::RunIn(Side side, std::function<Status()> fn) {
  return Spawn(side, std::move(fn)).Join();
}

Status NetnsPair::Shape(const LinkShape& shape) {
  if (shape.rate_bps == 0 || shape.burst_bytes == 0 || shape.latency_ms == 0) {
    return InvalidArgumentError(
        "link shape needs a non-zero rate_bps, burst_bytes and latency_ms");
  }
  if (link_deleted_) return FailedPreconditionError("the link was deleted");
  for (int i = 0; i < 2; ++i) {
    CONVERGE_RETURN_IF_ERROR(
        RunCommand({"tc", "-n", ns_[i], "qdisc", "replace", "dev", if_[i],
                    "root", "tbf", "rate",
                    std::to_string(shape.rate_bps) + "bps", "burst",
                    std::to_string(shape.burst_bytes), "latency",
                    std::to_string(shape.latency_ms) + "ms"})
            .status());
  }
  return OkStatus();
}

Status NetnsPair::SetLinkState(const char* state) {
  if (link_deleted_) return FailedPreconditionError("the link was deleted");
  for (int i = 0; i < 2; ++i) {
    CONVERGE_RETURN_IF_ERROR(
        RunCommand({"ip", "-n", ns_[i], "link", "set", if_[i], state})
            .status());
  }
  return OkStatus();
}

Status NetnsPair::DropLink() { return SetLinkState("down"); }

Status NetnsPair::RestoreLink() { return SetLinkState("up"); }

Status NetnsPair::DeleteLink() {
  if (link_deleted_) return FailedPreconditionError("the link was deleted");
  CONVERGE_RETURN_IF_ERROR(
      RunCommand({"ip", "-n", ns_[0], "link", "delete", if_[0]}).status());
  link_deleted_ = true;
  return OkStatus();
}

}  // namespace converge::testing
