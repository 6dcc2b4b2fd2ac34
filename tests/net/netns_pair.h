// NetnsPair: two hosts for network tests on one machine. Two private
// network namespaces joined by a veth pair, each end with an IPv4 address
// (10.231.0.1/24 on side A, 10.231.0.2/24 on side B), optionally shaped by
// a tc token bucket (tbf) on both ends. Tests run code "on a host" with
// Spawn()/RunIn(): a thread that enters the namespace before the function
// runs, so every socket the function creates lives there (a socket keeps
// its namespace after creation and may be used from any thread).
//
// The link can be taken down (DropLink), brought back (RestoreLink) or
// deleted (DeleteLink) while traffic flows, to test a network failure.
//
// Namespaces are named "cvgnet-<pid>-<n>-a" / "-b", so parallel test
// processes never collide; Create() first deletes namespaces of this
// prefix left by processes that no longer exist (a crashed run). The
// destructor deletes both namespaces (and with them the veth pair and its
// qdiscs), also when the test failed.
//
// The configuration is made by running `ip` and `tc` (iproute2); a failed
// command is an error carrying its command line and output. Only the two
// private namespaces are touched: no address or route of the caller's
// namespace changes.
//
// Thread-safety: the link calls (DropLink, RestoreLink, DeleteLink, Shape)
// and Spawn() may be called from any one thread at a time; threads spawned
// run concurrently with them.

#ifndef CONVERGE_TESTS_NET_NETNS_PAIR_H_
#define CONVERGE_TESTS_NET_NETNS_PAIR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"

namespace converge::testing {

// A tbf qdisc: what `tc qdisc replace dev <veth> root tbf rate <rate_bps>bps
// burst <burst_bytes> latency <latency_ms>ms` sets.
struct LinkShape {
  // Token rate in BYTES per second (tc's "bps"), counted on Ethernet frames:
  // TCP payload gets about 1448/1514 of it. 1 Gbit/s is 125'000'000.
  uint64_t rate_bps = 125'000'000;
  // Bucket depth: bytes that may leave at line rate after an idle period.
  // A deeper bucket smooths timer granularity but lets a burst pass
  // unshaped at the start of a transfer.
  uint64_t burst_bytes = 512 * 1024;
  // Longest a packet may wait in the qdisc before it is dropped; this sets
  // the queue size (rate * latency).
  uint32_t latency_ms = 50;
};

// Runs `argv` (argv[0] looked up in PATH) and returns what it printed on
// stdout; a non-zero exit is an error carrying the command line, the exit
// status and its stderr.
[[nodiscard]] Result<std::string> RunCommand(
    const std::vector<std::string>& argv);

// A thread running inside one namespace of a NetnsPair (see Spawn()).
// Joins in the destructor.
class NetnsThread {
 public:
  NetnsThread() = default;
  NetnsThread(NetnsThread&&) = default;
  NetnsThread& operator=(NetnsThread&&) = delete;
  NetnsThread(const NetnsThread&) = delete;
  NetnsThread& operator=(const NetnsThread&) = delete;
  ~NetnsThread();

  // Waits for the thread; returns the function's Status, or why the thread
  // could not enter the namespace (the function then did not run).
  // REQUIRES: joinable().
  [[nodiscard]] Status Join();
  bool joinable() const { return thread_.joinable(); }

 private:
  friend class NetnsPair;
  std::unique_ptr<Status> result_;  // written by the thread before it ends
  std::thread thread_;
};

class NetnsPair {
 public:
  enum class Side : uint8_t { kA, kB };

  struct Options {
    // Shape both ends of the link at creation; false leaves it at veth
    // speed (several GB/s, bounded by CPU).
    bool shaped = false;
    LinkShape shape;
  };

  // OK when this process can make namespaces (CAP_NET_ADMIN and
  // CAP_SYS_ADMIN for setns, and `ip` in PATH); otherwise an error whose
  // message is the reason, for GTEST_SKIP.
  [[nodiscard]] static Status Available();

  // Makes both namespaces, the veth pair, the addresses and (if asked) the
  // shaping, after removing stale namespaces of dead processes. A failure
  // removes whatever was made.
  [[nodiscard]] static Result<std::unique_ptr<NetnsPair>> Create(
      const Options& options);
  [[nodiscard]] static Result<std::unique_ptr<NetnsPair>> Create() {
    return Create(Options());
  }

  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;
  // Deletes both namespaces. Threads still inside one keep it alive until
  // they end (join them first).
  ~NetnsPair();

  // The namespace's name under /var/run/netns, its veth end, and that
  // end's IPv4 address (no prefix length).
  const std::string& namespace_name(Side side) const;
  const std::string& interface_name(Side side) const;
  std::string address(Side side) const;
  static constexpr int kPrefixLength = 24;

  // Starts fn on a new thread inside `side`'s namespace.
  [[nodiscard]] NetnsThread Spawn(Side side, std::function<Status()> fn);
  // Spawn() and Join().
  [[nodiscard]] Status RunIn(Side side, std::function<Status()> fn);

  // Sets (or replaces) the tbf qdisc on both ends.
  [[nodiscard]] Status Shape(const LinkShape& shape);
  // Sets both ends administratively down: packets stop, sockets stay open
  // and see the loss only through their own timeouts.
  [[nodiscard]] Status DropLink();
  // Sets both ends up again (addresses and the connected route return).
  [[nodiscard]] Status RestoreLink();
  // Deletes the veth pair; the link cannot be restored.
  [[nodiscard]] Status DeleteLink();

  // Deletes every namespace named with this fixture's prefix whose process
  // is gone. Returns how many were deleted. Create() calls it.
  [[nodiscard]] static Result<int> RemoveStaleNamespaces();
  // The namespace name prefix ("cvgnet-").
  static const char* NamePrefix();

 private:
  explicit NetnsPair(uint32_t serial);
  Status Build(const Options& options);
  Status SetLinkState(const char* state);

  std::string ns_[2];
  std::string if_[2];
  bool created_[2] = {false, false};
  bool link_deleted_ = false;
};

}  // namespace converge::testing

// In a TEST body: skips the test, with the reason, where NetnsPair cannot
// run (see NetnsPair::Available()).
#define CONVERGE_SKIP_WITHOUT_NETNS()                                 \
  do {                                                                \
    ::converge::Status converge_netns_ =                              \
        ::converge::testing::NetnsPair::Available();                  \
    if (!converge_netns_.ok()) GTEST_SKIP() << converge_netns_.message(); \
  } while (0)

#endif  // CONVERGE_TESTS_NET_NETNS_PAIR_H_
