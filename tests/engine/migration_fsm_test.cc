#include "engine/migration_fsm.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace converge {
namespace {

using S = MigState;

// The kernel's next-step table, typed in from shared/uapi.md section 1
// (rows: from; columns: to; both in ABI order ERROR, STOP, RUNNING,
// STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P).
constexpr S E = S::kError, ST = S::kStop, RU = S::kRunning, SC = S::kStopCopy,
            RE = S::kResuming, RP = S::kRunningP2p, PC = S::kPreCopy,
            PP = S::kPreCopyP2p;
constexpr S kTable[8][8] = {
    /* ERROR     */ {E, E, E, E, E, E, E, E},
    /* STOP      */ {E, ST, RP, SC, RE, RP, RP, RP},
    /* RUNNING   */ {E, RP, RU, RP, RP, RP, PC, RP},
    /* STOP_COPY */ {E, ST, ST, SC, ST, ST, E, E},
    /* RESUMING  */ {E, ST, ST, ST, RE, ST, ST, ST},
    /* RUN_P2P   */ {E, ST, RU, ST, ST, RP, RU, PP},
    /* PRE_COPY  */ {E, RU, RU, PP, RU, RU, PC, PP},
    /* PC_P2P    */ {E, RP, RP, SC, RP, RP, PC, PP},
};

constexpr uint64_t kBase = kMigrationStopCopy;
constexpr uint64_t kP2p = kMigrationStopCopy | kMigrationP2p;
constexpr uint64_t kPre = kMigrationStopCopy | kMigrationPreCopy;
constexpr uint64_t kAll = kMigrationStopCopy | kMigrationP2p | kMigrationPreCopy;
constexpr uint64_t kFlagSets[] = {kBase, kP2p, kPre, kAll};

bool RefUsable(S s, uint64_t flags) {
  switch (s) {
    case S::kError: return false;
    case S::kRunningP2p: return (flags & kMigrationP2p) != 0;
    case S::kPreCopy: return (flags & kMigrationPreCopy) != 0;
    case S::kPreCopyP2p:
      return (flags & kMigrationP2p) && (flags & kMigrationPreCopy);
    default: return true;
  }
}

// The kernel's walk; nullopt where its skip loop would never end.
std::optional<std::vector<S>> RefPath(S from, S to, uint64_t flags) {
  std::vector<S> path;
  S cur = from;
  while (cur != to) {
    S step = kTable[static_cast<int>(cur)][static_cast<int>(to)];
    int spins = 0;
    while (!RefUsable(step, flags)) {
      if (++spins > 64) return std::nullopt;
      step = kTable[static_cast<int>(step)][static_cast<int>(to)];
    }
    path.push_back(step);
    cur = step;
  }
  return path;
}

std::string Describe(S from, S to, uint64_t flags) {
  return std::string(MigStateName(from)) + " -> " +
         std::string(MigStateName(to)) + " flags " + std::to_string(flags);
}

TEST(MigrationFsmTest, EveryTripleMatchesTheKernelTable) {
  for (uint64_t flags : kFlagSets) {
    for (uint32_t f = 0; f < kNumMigStates; ++f) {
      for (uint32_t t = 0; t < kNumMigStates; ++t) {
        S from = static_cast<S>(f), to = static_cast<S>(t);
        SCOPED_TRACE(Describe(from, to, flags));
        Result<std::vector<S>> path = PlanPath(from, to, flags);
        Result<S> next = NextStep(from, to, flags);
        bool refused = from == S::kStopCopy &&
                       (to == S::kPreCopy || to == S::kPreCopyP2p);
        if (refused || !RefUsable(from, flags) || !RefUsable(to, flags)) {
          EXPECT_FALSE(path.ok());
          EXPECT_FALSE(next.ok());
          continue;
        }
        std::optional<std::vector<S>> want = RefPath(from, to, flags);
        ASSERT_TRUE(want.has_value());
        ASSERT_TRUE(path.ok()) << path.status().ToString();
        EXPECT_EQ(*path, *want);
        ASSERT_TRUE(next.ok());
        EXPECT_EQ(*next, want->empty() ? to : want->front());
        for (S s : *path) EXPECT_TRUE(IsUsable(s, flags));
      }
    }
  }
}

TEST(MigrationFsmTest, UsableMatchesFlags) {
  for (uint64_t flags : kFlagSets) {
    for (uint32_t s = 0; s < kNumMigStates; ++s) {
      EXPECT_EQ(IsUsable(static_cast<S>(s), flags),
                RefUsable(static_cast<S>(s), flags))
          << MigStateName(static_cast<S>(s)) << " flags " << flags;
    }
  }
  EXPECT_FALSE(IsUsable(S::kRunning, 0));
  EXPECT_FALSE(IsUsable(static_cast<S>(9), kAll));
}

struct PathCase {
  S from, to;
  uint64_t flags;
  std::vector<S> path;
};

TEST(MigrationFsmTest, CollapsedPathsTable) {
  const PathCase cases[] = {
      {RU, SC, kBase, {ST, SC}},
      {RU, SC, kP2p, {RP, ST, SC}},
      {RU, SC, kAll, {RP, ST, SC}},
      {PC, SC, kPre, {SC}},
      {PC, SC, kAll, {PP, SC}},
      {RU, PP, kAll, {RP, PP}},
      {ST, PC, kPre, {RU, PC}},
      {ST, PC, kAll, {RP, RU, PC}},
      {SC, RU, kBase, {ST, RU}},
      {SC, RU, kAll, {ST, RP, RU}},
      {RE, RU, kP2p, {ST, RP, RU}},
      {PP, ST, kAll, {RP, ST}},
      {PC, ST, kPre, {RU, ST}},
      {RU, RU, kAll, {}},
  };
  for (const PathCase& c : cases) {
    Result<std::vector<S>> path = PlanPath(c.from, c.to, c.flags);
    ASSERT_TRUE(path.ok()) << Describe(c.from, c.to, c.flags);
    EXPECT_EQ(*path, c.path) << Describe(c.from, c.to, c.flags);
  }
}

TEST(MigrationFsmTest, HangingArcsAreRefusedWithAClearError) {
  for (uint64_t flags : kFlagSets) {
    for (S to : {S::kPreCopy, S::kPreCopyP2p}) {
      EXPECT_TRUE(IsRefusedArc(S::kStopCopy, to));
      Result<std::vector<S>> path = PlanPath(S::kStopCopy, to, flags);
      ASSERT_FALSE(path.ok());
      EXPECT_EQ(path.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(path.status().message().find("refused"), std::string::npos)
          << path.status().ToString();
      EXPECT_NE(path.status().message().find("STOP_COPY -> PRE_COPY"),
                std::string::npos);
    }
  }
  EXPECT_FALSE(IsRefusedArc(S::kPreCopy, S::kStopCopy));
}

struct ErrorCase {
  S from, to;
  uint64_t flags;
  StatusCode code;
  const char* needle;
};

TEST(MigrationFsmTest, BadRequestsNameWhatIsWrong) {
  const ErrorCase cases[] = {
      {RU, E, kAll, StatusCode::kInvalidArgument, "ERROR can never"},
      {E, RU, kAll, StatusCode::kFailedPrecondition, "VFIO_DEVICE_RESET"},
      {RU, PC, kBase, StatusCode::kInvalidArgument, "VFIO_MIGRATION_PRE_COPY"},
      {RU, RP, kPre, StatusCode::kInvalidArgument, "VFIO_MIGRATION_P2P"},
      {RP, ST, kBase, StatusCode::kInvalidArgument, "current state"},
      {RU, ST, kMigrationP2p, StatusCode::kInvalidArgument, "mandatory"},
      {RU, static_cast<S>(8), kAll, StatusCode::kInvalidArgument,
       "out of range"},
  };
  for (const ErrorCase& c : cases) {
    Result<std::vector<S>> path = PlanPath(c.from, c.to, c.flags);
    ASSERT_FALSE(path.ok()) << Describe(c.from, c.to, c.flags);
    EXPECT_EQ(path.status().code(), c.code) << path.status().ToString();
    EXPECT_NE(path.status().message().find(c.needle), std::string::npos)
        << path.status().ToString();
  }
}

TEST(MigrationFsmTest, DataFdArcs) {
  // Opening arcs from uapi.md, and only those (among arcs the FSM walks).
  for (uint32_t f = 0; f < kNumMigStates; ++f) {
    for (uint32_t t = 0; t < kNumMigStates; ++t) {
      S from = static_cast<S>(f), to = static_cast<S>(t);
      if (from == S::kError || to == S::kError || from == to) continue;
      bool want = (from == RU && to == PC) || (from == RP && to == PP) ||
                  (from == ST && to == SC) || (from == ST && to == RE);
      if (kTable[f][t] != to) continue;  // not an arc the kernel walks
      EXPECT_EQ(ArcOpensDataFd(from, to), want) << Describe(from, to, 0);
    }
  }
  EXPECT_TRUE(ArcEndsDataSession(SC, ST));
  EXPECT_TRUE(ArcEndsDataSession(PC, RU));
  EXPECT_TRUE(ArcEndsDataSession(PP, RP));
  EXPECT_TRUE(ArcEndsDataSession(RE, ST));
  EXPECT_FALSE(ArcEndsDataSession(PC, PP));
  EXPECT_FALSE(ArcEndsDataSession(PP, SC));
}

struct EffectCase {
  S from, to;
  uint64_t flags;
  bool ends, opens;
};

TEST(MigrationFsmTest, DataEffectOfWholeSets) {
  const EffectCase cases[] = {
      {RU, PC, kAll, false, true},   {RU, PP, kAll, false, true},
      {PC, SC, kPre, false, false},  {PC, SC, kAll, false, false},
      {PP, SC, kAll, false, false},  {RU, SC, kBase, false, true},
      {SC, ST, kBase, true, false},  {SC, RU, kAll, true, false},
      {PC, RU, kPre, true, false},   {ST, RE, kBase, false, true},
      {RE, ST, kBase, true, false},  {RE, SC, kBase, true, true},
      {RP, ST, kP2p, false, false},  {PC, PP, kAll, false, false},
  };
  for (const EffectCase& c : cases) {
    Result<PathDataEffect> e = DataEffectOfSet(c.from, c.to, c.flags);
    ASSERT_TRUE(e.ok()) << Describe(c.from, c.to, c.flags);
    EXPECT_EQ(e->ends_session, c.ends) << Describe(c.from, c.to, c.flags);
    EXPECT_EQ(e->opens_data_fd, c.opens) << Describe(c.from, c.to, c.flags);
  }
}

TEST(MigrationFsmTest, StateNamesAndKernelValues) {
  EXPECT_EQ(MigStateName(S::kPreCopyP2p), "PRE_COPY_P2P");
  EXPECT_EQ(MigStateName(S::kError), "ERROR");
  EXPECT_EQ(MigStateName(static_cast<S>(42)), "INVALID");
  ASSERT_TRUE(MigStateFromKernel(6).ok());
  EXPECT_EQ(*MigStateFromKernel(6), S::kPreCopy);
  Result<S> bad = MigStateFromKernel(8);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("8"), std::string::npos);
}

}  // namespace
}  // namespace converge
