#include "io/socket_transport.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace converge {
namespace {

struct AddrInfoFree {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};

Result<std::unique_ptr<addrinfo, AddrInfoFree>> Resolve(
    const std::string& host, uint16_t port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* result = nullptr;
  const std::string service = std::to_string(port);
  int r = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (r != 0) {
    return InvalidArgumentError("bad address " + host + ":" + service + ": " +
                                gai_strerror(r));
  }
  return std::unique_ptr<addrinfo, AddrInfoFree>(result);
}

std::string Name(const std::string& host, uint16_t port) {
  return "socket " + host + ":" + std::to_string(port);
}

Status SetIntOption(int fd, int level, int name, int value,
                    const char* what) {
  return SysCall(std::string("setsockopt ") + what, [&] {
           return ::setsockopt(fd, level, name, &value, sizeof value);
         })
      .status();
}

}  // namespace

Status SetTcpLiveness(int fd, const TcpLiveness& l) {
  CONVERGE_RETURN_IF_ERROR(
      SetIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"));
  if (l.user_timeout_ms > 0) {
    CONVERGE_RETURN_IF_ERROR(
        SetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
                     static_cast<int>(l.user_timeout_ms), "TCP_USER_TIMEOUT"));
  }
  if (l.keepalive_idle_s == 0) return OkStatus();
  if (l.keepalive_interval_s == 0) {
    return InvalidArgumentError("TcpLiveness: keepalive_interval_s is 0 "
                                "with keepalive on");
  }
  CONVERGE_RETURN_IF_ERROR(
      SetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"));
  CONVERGE_RETURN_IF_ERROR(
      SetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE,
                   static_cast<int>(l.keepalive_idle_s), "TCP_KEEPIDLE"));
  return SetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL,
                      static_cast<int>(l.keepalive_interval_s),
                      "TCP_KEEPINTVL");
}

Result<std::unique_ptr<SocketTransport>> SocketTransport::FromFd(
    int fd, std::string name, const UringStreamOptions& options) {
  auto stream = UringStream::Create(fd, /*seekable=*/false, std::move(name),
                                    options);
  if (!stream.ok()) {
    ::close(fd);
    return stream.status();
  }
  return std::unique_ptr<SocketTransport>(
      new SocketTransport(fd, std::move(stream).value()));
}

Result<std::unique_ptr<SocketTransport>> SocketTransport::Connect(
    const std::string& host, uint16_t port, const UringStreamOptions& options,
    const TcpLiveness& liveness) {
  CONVERGE_ASSIGN_OR_RETURN(auto info, Resolve(host, port, false));
  CONVERGE_ASSIGN_OR_RETURN(
      long fd, SysCall("socket", [&] {
        return ::socket(info->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      }));
  Result<long> c = RetryOnEintr([&] {
    return SysCall("connect " + Name(host, port), [&] {
      return ::connect(static_cast<int>(fd), info->ai_addr, info->ai_addrlen);
    });
  });
  if (!c.ok()) {
    ::close(static_cast<int>(fd));
    return c.status();
  }
  Status configured = SetTcpLiveness(static_cast<int>(fd), liveness);
  if (!configured.ok()) {
    ::close(static_cast<int>(fd));
    return configured;
  }
  return FromFd(static_cast<int>(fd), Name(host, port), options);
}

SocketTransport::~SocketTransport() {
  if (fd_ >= 0) (void)Close();
}

Status SocketTransport::Write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return FailedPreconditionError("write to a closed socket");
  CONVERGE_RETURN_IF_ERROR(stream_->Write(bytes));
  bytes_written_ += bytes.size();
  return OkStatus();
}

Result<size_t> SocketTransport::Read(std::span<uint8_t> buf) {
  if (fd_ < 0) return FailedPreconditionError("read from a closed socket");
  CONVERGE_ASSIGN_OR_RETURN(size_t n, stream_->Read(buf));
  bytes_read_ += n;
  return n;
}

Status SocketTransport::Flush() {
  if (fd_ < 0) return FailedPreconditionError("flush of a closed socket");
  return stream_->Flush();
}

Status SocketTransport::Close() {
  if (fd_ < 0) return OkStatus();
  Status flushed = stream_->Flush();
  stream_.reset();  // waits for anything still in flight
  (void)::shutdown(fd_, SHUT_WR);
  Result<long> closed = SysCall("close socket", [&] { return ::close(fd_); });
  fd_ = -1;
  if (!flushed.ok()) return flushed;
  return closed.status();
}

Result<std::unique_ptr<SocketListener>> SocketListener::Listen(
    const std::string& host, uint16_t port) {
  CONVERGE_ASSIGN_OR_RETURN(auto info, Resolve(host, port, true));
  CONVERGE_ASSIGN_OR_RETURN(
      long fd, SysCall("socket", [&] {
        return ::socket(info->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      }));
  std::unique_ptr<SocketListener> listener(
      new SocketListener(static_cast<int>(fd), 0));
  int one = 1;
  (void)::setsockopt(listener->fd_, SOL_SOCKET, SO_REUSEADDR, &one,
                     sizeof(one));
  CONVERGE_RETURN_IF_ERROR(SysCall("bind " + Name(host, port), [&] {
    return ::bind(listener->fd_, info->ai_addr, info->ai_addrlen);
  }));
  CONVERGE_RETURN_IF_ERROR(SysCall("listen " + Name(host, port), [&] {
    return ::listen(listener->fd_, 16);
  }));
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  CONVERGE_RETURN_IF_ERROR(SysCall("getsockname", [&] {
    return ::getsockname(listener->fd_, reinterpret_cast<sockaddr*>(&addr),
                         &len);
  }));
  listener->port_ = ntohs(addr.ss_family == AF_INET6
                              ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                              : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  return listener;
}

SocketListener::~SocketListener() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<SocketTransport>> SocketListener::Accept(
    const UringStreamOptions& options, const TcpLiveness& liveness) {
  CONVERGE_ASSIGN_OR_RETURN(long fd, RetryOnEintr([&] {
    return SysCall("accept", [&] {
      return ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    });
  }));
  Status configured = SetTcpLiveness(static_cast<int>(fd), liveness);
  if (!configured.ok()) {
    ::close(static_cast<int>(fd));
    return configured;
  }
  return SocketTransport::FromFd(static_cast<int>(fd),
                                 "accepted socket on port " +
                                     std::to_string(port_),
                                 options);
}

}  // namespace converge
