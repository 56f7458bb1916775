/*
 * A CDCL SAT solver in C11, written for the `sat_c` problem of `evolve`.
 *
 *   cc -O2 -std=c11 -o solver solver.c
 *   ./solver [formula.cnf]        (DIMACS CNF from the file, or from stdin without an argument)
 *
 * Prints `s SATISFIABLE` and the model on `v ...` lines ending with 0, or `s UNSATISFIABLE`, and
 * exits 0 (the runner counts any other exit status as a failed run); `s UNKNOWN` and exit status 1
 * on malformed input or a resource failure.
 *
 * The fixed core: two watched literals with blockers, first-UIP conflict analysis and clause
 * learning, recursive learned-clause minimisation, VSIDS on a binary heap, phase saving,
 * restarts, learned-clause database reduction with compaction. The heuristics and policies are
 * in the EVOLVE-BLOCK below: they choose *how fast* the search goes, never *whether an answer is
 * right* (a wrong model is caught by the verifier, and every rule the core needs for soundness is
 * enforced outside the block).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ fixed core: data types */

typedef uint32_t CRef;          /* offset of a clause in the arena */
#define CREF_UNDEF UINT32_MAX
#define LIT_UNDEF (-1)
#define HEADER_WORDS 3          /* size, flags|lbd, activity */
#define FLAG_LEARNT 1u
#define FLAG_DELETED 2u
#define FLAG_MOVED 4u
#define LBD_SHIFT 3

static inline int lit_var(int lit) { return lit >> 1; }
static inline int lit_sign(int lit) { return lit & 1; }       /* 1 = negative literal */
static inline int lit_neg(int lit) { return lit ^ 1; }
static inline int make_lit(int var, int negative) { return 2 * var + (negative ? 1 : 0); }

typedef struct { CRef cref; int blocker; } Watcher;
typedef struct { Watcher *data; int size, cap; } WatchList;
typedef struct { int *data; int size, cap; } IntVec;

typedef struct {
    uint64_t conflicts, decisions, propagations, restarts, reductions;
    uint64_t conflicts_since_restart;
    unsigned last_lbd;          /* LBD of the clause learnt at the last conflict */
    unsigned last_size;         /* its size after minimisation */
    double lbd_fast, lbd_slow;  /* exponential moving averages of learnt-clause LBD */
    double trail_average;       /* moving average of the trail length at conflicts */
} Stats;

typedef struct {
    int num_vars;
    /* clause arena */
    uint32_t *mem;
    size_t mem_size, mem_cap, mem_wasted;
    IntVec originals, learnts; /* CRefs */
    /* assignment */
    signed char *value;         /* per literal: 1 true, -1 false, 0 unassigned */
    int *level;
    CRef *reason;
    int *trail, trail_size, qhead;
    IntVec trail_lim;
    WatchList *watches;         /* per literal p: clauses containing ~p */
    /* branching */
    double *activity;
    double var_inc;
    double cla_inc;
    signed char *saved_phase;   /* last value of each variable: 1 true, 0 false */
    int *heap, heap_size, *heap_index;
    uint64_t rng;
    /* analysis scratch */
    signed char *seen;
    IntVec learnt, to_clear, stack;
    unsigned *level_stamp;
    unsigned stamp;
    /* policy state */
    uint64_t next_reduce;
    int luby_index;
    uint64_t restart_limit;
    Stats stats;
} Solver;

static inline int decision_level(const Solver *S) { return S->trail_lim.size; }
static inline int var_value(const Solver *S, int var) { return S->value[2 * var]; }
static inline unsigned clause_size(const Solver *S, CRef c) { return S->mem[c]; }
static inline int *clause_lits(const Solver *S, CRef c) { return (int *)&S->mem[c + HEADER_WORDS]; }
static inline int clause_learnt(const Solver *S, CRef c) { return (S->mem[c + 1] & FLAG_LEARNT) != 0; }
static inline unsigned clause_lbd(const Solver *S, CRef c) { return S->mem[c + 1] >> LBD_SHIFT; }
static inline float clause_activity(const Solver *S, CRef c) { float f; memcpy(&f, &S->mem[c + 2], sizeof f); return f; }
static inline void set_clause_activity(Solver *S, CRef c, float f) { memcpy(&S->mem[c + 2], &f, sizeof f); }
static inline void set_clause_lbd(Solver *S, CRef c, unsigned lbd) {
    S->mem[c + 1] = (S->mem[c + 1] & ((1u << LBD_SHIFT) - 1)) | (lbd << LBD_SHIFT);
}
/* A reason clause of a current assignment may not be deleted. */
static inline int clause_locked(const Solver *S, CRef c) {
    int first = clause_lits(S, c)[0];
    return S->value[first] == 1 && S->reason[lit_var(first)] == c;
}
static inline double random_double(Solver *S) {  /* xorshift64*, uniform in [0, 1) */
    S->rng ^= S->rng >> 12; S->rng ^= S->rng << 25; S->rng ^= S->rng >> 27;
    return (double)((S->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* The x-th term (from 0) of the Luby sequence 1 1 2 1 1 2 4 ..., as powers of y: restart_due's unit. */
static double luby(double y, int x) {
    int size = 1, seq = 0;
    while (size < x + 1) { seq++; size = 2 * size + 1; }
    while (size - 1 != x) { size = (size - 1) >> 1; seq--; x = x % size; }
    return pow(y, seq);
}

/* ================================================================================================
 * The heuristics and policies. Everything between the markers may be changed; the core calls
 * only the functions defined here and reads only these constants.
 * ============================================================================================== */
// EVOLVE-BLOCK-START
/* VSIDS: a variable's activity grows by var_inc on every bump; var_inc grows by 1/decay per conflict. */
#define VAR_DECAY 0.8
#define VAR_DECAY_START 0.8     /* decay used at the start ... */
#define VAR_DECAY_STEP 0.0       /* ... moved towards VAR_DECAY by this much every 5000 conflicts */
#define CLAUSE_DECAY 0.999
#define RANDOM_DECISION_FREQ 0.0 /* chance of branching on a random variable */
#define RANDOM_SEED 91648253ull
/* Restarts: 0 = Luby sequence times LUBY_UNIT conflicts, 1 = glucose-style on LBD averages. */
#define RESTART_POLICY 0
#define LUBY_UNIT 512
#define GLUCOSE_K 0.8            /* restart when the recent LBD average exceeds the global one / K */
#define GLUCOSE_MIN_CONFLICTS 50
#define LBD_FAST_ALPHA (1.0 / 32)
#define LBD_SLOW_ALPHA (1.0 / 4096)
/* Learnt-clause database reduction. */
#define REDUCE_FIRST 2000        /* conflicts before the first reduction */
#define REDUCE_INCREMENT 300     /* each interval is this much longer than the last */
#define REDUCE_FRACTION 0.5      /* share of the reducible learnt clauses deleted */
#define GLUE_LBD 2               /* learnt clauses with LBD <= this are never deleted */
/* Learnt-clause minimisation: 0 none, 1 local (reasons' literals), 2 recursive. */
#define MINIMIZE_MODE 2
#define DEFAULT_PHASE 0          /* phase of a variable never assigned: 0 false, 1 true */

/* Called after every conflict; the core multiplies var_inc by 1 / the returned value. */
static double var_decay_now(const Solver *S) {
    double decay = VAR_DECAY_START + VAR_DECAY_STEP * (double)(S->stats.conflicts / 5000);
    return decay > VAR_DECAY ? VAR_DECAY : decay;
}

/* Called when no conflict is pending; return 1 to backtrack to level 0. */
static int restart_due(Solver *S) {
    if (RESTART_POLICY == 1) {
        return S->stats.conflicts_since_restart >= GLUCOSE_MIN_CONFLICTS
               && S->stats.lbd_fast * GLUCOSE_K > S->stats.lbd_slow;
    }
    if (S->stats.conflicts_since_restart < S->restart_limit) return 0;
    S->restart_limit = (uint64_t)(luby(2.0, ++S->luby_index) * LUBY_UNIT);
    return 1;
}

/* The value to try first for a decision variable: 1 true, 0 false. */
static int pick_phase(Solver *S, int var) {
    return S->saved_phase[var];
}

/* Called at a decision point; return 1 to run a database reduction now. */
static int reduce_due(Solver *S) {
    if (S->stats.conflicts < S->next_reduce) return 0;
    S->next_reduce = S->stats.conflicts + REDUCE_FIRST + REDUCE_INCREMENT * (S->stats.reductions + 1);
    return 1;
}

/* Higher = more worth keeping. Locked and glue clauses are kept whatever this says. */
static double learnt_keep_score(const Solver *S, CRef c) {
    return -(double)clause_lbd(S, c) * 1e6 + clause_activity(S, c) / (1.0 + S->cla_inc) ;
}
// EVOLVE-BLOCK-END
/* ============================================================================================== */

/* ------------------------------------------------------------------ fixed core: helpers */

static void die(const char *message) {
    fprintf(stderr, "c error: %s\n", message);
    printf("s UNKNOWN\n");
    exit(1);
}

static void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) die("out of memory");
    return q;
}

static void ivec_push(IntVec *v, int x) {
    if (v->size == v->cap) { v->cap = v->cap ? 2 * v->cap : 16; v->data = xrealloc(v->data, (size_t)v->cap * sizeof(int)); }
    v->data[v->size++] = x;
}

static void watch_push(WatchList *w, CRef c, int blocker) {
    if (w->size == w->cap) { w->cap = w->cap ? 2 * w->cap : 4; w->data = xrealloc(w->data, (size_t)w->cap * sizeof(Watcher)); }
    w->data[w->size].cref = c; w->data[w->size].blocker = blocker; w->size++;
}

/* ------------------------------------------------------------------ heap of variables by activity */

static inline int heap_less(const Solver *S, int a, int b) { return S->activity[a] > S->activity[b]; }

static void heap_up(Solver *S, int i) {
    int var = S->heap[i];
    while (i > 0) {
        int parent = (i - 1) >> 1;
        if (!heap_less(S, var, S->heap[parent])) break;
        S->heap[i] = S->heap[parent]; S->heap_index[S->heap[i]] = i; i = parent;
    }
    S->heap[i] = var; S->heap_index[var] = i;
}

static void heap_down(Solver *S, int i) {
    int var = S->heap[i];
    for (;;) {
        int child = 2 * i + 1;
        if (child >= S->heap_size) break;
        if (child + 1 < S->heap_size && heap_less(S, S->heap[child + 1], S->heap[child])) child++;
        if (!heap_less(S, S->heap[child], var)) break;
        S->heap[i] = S->heap[child]; S->heap_index[S->heap[i]] = i; i = child;
    }
    S->heap[i] = var; S->heap_index[var] = i;
}

static void heap_insert(Solver *S, int var) {
    if (S->heap_index[var] >= 0) return;
    S->heap[S->heap_size] = var; S->heap_index[var] = S->heap_size++;
    heap_up(S, S->heap_size - 1);
}

static int heap_pop(Solver *S) {
    int top = S->heap[0];
    S->heap_index[top] = -1;
    if (--S->heap_size > 0) { S->heap[0] = S->heap[S->heap_size]; S->heap_index[S->heap[0]] = 0; heap_down(S, 0); }
    return top;
}

static void bump_var(Solver *S, int var) {
    double inc = S->var_inc;
    if (!isfinite(inc) || inc <= 0) inc = S->var_inc = 1.0;  /* a policy may return nonsense */
    if ((S->activity[var] += inc) > 1e100) {
        for (int v = 0; v < S->num_vars; v++) S->activity[v] *= 1e-100;
        S->var_inc *= 1e-100;
    }
    if (S->heap_index[var] >= 0) heap_up(S, S->heap_index[var]);
}

static void bump_clause(Solver *S, CRef c) {
    float a = clause_activity(S, c) + (float)S->cla_inc;
    set_clause_activity(S, c, a);
    if (a > 1e20f) {
        for (int i = 0; i < S->learnts.size; i++) {
            CRef d = (CRef)S->learnts.data[i];
            set_clause_activity(S, d, clause_activity(S, d) * 1e-20f);
        }
        S->cla_inc *= 1e-20;
    }
}

/* ------------------------------------------------------------------ clauses */

static CRef alloc_clause(Solver *S, const int *lits, int size, int learnt) {
    size_t need = HEADER_WORDS + (size_t)size;
    if (S->mem_size + need > S->mem_cap) {
        while (S->mem_size + need > S->mem_cap) S->mem_cap = S->mem_cap ? S->mem_cap * 2 : 1024;
        if (S->mem_cap > (size_t)UINT32_MAX - 16) die("clause arena too large");
        S->mem = xrealloc(S->mem, S->mem_cap * sizeof(uint32_t));
    }
    CRef c = (CRef)S->mem_size;
    S->mem[c] = (uint32_t)size;
    S->mem[c + 1] = learnt ? FLAG_LEARNT : 0;
    S->mem[c + 2] = 0;
    set_clause_activity(S, c, 0.0f);
    memcpy(&S->mem[c + HEADER_WORDS], lits, (size_t)size * sizeof(int));
    S->mem_size += need;
    return c;
}

static void attach_clause(Solver *S, CRef c) {
    int *lits = clause_lits(S, c);
    watch_push(&S->watches[lit_neg(lits[0])], c, lits[1]);
    watch_push(&S->watches[lit_neg(lits[1])], c, lits[0]);
}

static void enqueue(Solver *S, int lit, CRef from) {
    int var = lit_var(lit);
    S->value[lit] = 1; S->value[lit_neg(lit)] = -1;
    S->level[var] = decision_level(S);
    S->reason[var] = from;
    S->trail[S->trail_size++] = lit;
}

static void cancel_until(Solver *S, int target) {
    if (decision_level(S) <= target) return;
    int stop = S->trail_lim.data[target];
    for (int i = S->trail_size - 1; i >= stop; i--) {
        int lit = S->trail[i], var = lit_var(lit);
        S->saved_phase[var] = (signed char)!lit_sign(lit);
        S->value[lit] = S->value[lit_neg(lit)] = 0;
        S->reason[var] = CREF_UNDEF;
        heap_insert(S, var);
    }
    S->trail_size = S->qhead = stop;
    S->trail_lim.size = target;
}

/* Unit propagation over the two watched literals; returns a conflicting clause or CREF_UNDEF. */
static CRef propagate(Solver *S) {
    CRef conflict = CREF_UNDEF;
    while (S->qhead < S->trail_size) {
        int p = S->trail[S->qhead++], false_lit = lit_neg(p);
        WatchList *ws = &S->watches[p];
        Watcher *i = ws->data, *j = ws->data, *end = ws->data + ws->size;
        S->stats.propagations++;
        while (i != end) {
            int blocker = i->blocker;
            if (S->value[blocker] == 1) { *j++ = *i++; continue; }
            CRef c = i->cref;
            int *lits = clause_lits(S, c);
            if (lits[0] == false_lit) { lits[0] = lits[1]; lits[1] = false_lit; }
            i++;
            int first = lits[0];
            if (first != blocker && S->value[first] == 1) { j->cref = c; j->blocker = first; j++; continue; }
            unsigned size = clause_size(S, c);
            int found = 0;
            for (unsigned k = 2; k < size; k++) {
                if (S->value[lits[k]] != -1) {
                    lits[1] = lits[k]; lits[k] = false_lit;
                    watch_push(&S->watches[lit_neg(lits[1])], c, first);
                    found = 1;
                    break;
                }
            }
            if (found) continue;
            j->cref = c; j->blocker = first; j++;
            if (S->value[first] == -1) {
                conflict = c;
                S->qhead = S->trail_size;
                while (i != end) *j++ = *i++;
            } else {
                enqueue(S, first, c);
            }
        }
        ws->size = (int)(j - ws->data);
        if (conflict != CREF_UNDEF) break;
    }
    return conflict;
}

/* ------------------------------------------------------------------ conflict analysis */

static inline uint32_t abstract_level(const Solver *S, int var) { return 1u << (S->level[var] & 31); }

/* Is `lit` implied by the other literals of the learnt clause (seen[] marks them)? */
static int lit_redundant(Solver *S, int lit, uint32_t levels) {
    S->stack.size = 0;
    ivec_push(&S->stack, lit);
    int top = S->to_clear.size;
    while (S->stack.size > 0) {
        int q = S->stack.data[--S->stack.size];
        CRef c = S->reason[lit_var(q)];
        int *lits = clause_lits(S, c);
        unsigned size = clause_size(S, c);
        for (unsigned i = 1; i < size; i++) {
            int l = lits[i], v = lit_var(l);
            if (S->seen[v] || S->level[v] == 0) continue;
            if (S->reason[v] != CREF_UNDEF && (abstract_level(S, v) & levels)) {
                S->seen[v] = 1;
                ivec_push(&S->stack, l);
                ivec_push(&S->to_clear, l);
            } else {
                for (int k = top; k < S->to_clear.size; k++) S->seen[lit_var(S->to_clear.data[k])] = 0;
                S->to_clear.size = top;
                return 0;
            }
        }
    }
    return 1;
}

static unsigned compute_lbd(Solver *S, const int *lits, int size) {
    if (++S->stamp == 0) { memset(S->level_stamp, 0, (size_t)(S->num_vars + 1) * sizeof(unsigned)); S->stamp = 1; }
    unsigned lbd = 0;
    for (int i = 0; i < size; i++) {
        int lvl = S->level[lit_var(lits[i])];
        if (S->level_stamp[lvl] != S->stamp) { S->level_stamp[lvl] = S->stamp; lbd++; }
    }
    return lbd;
}

/* First-UIP learning: fills S->learnt (asserting literal first), returns the backjump level. */
static int analyze(Solver *S, CRef conflict) {
    int path = 0, p = LIT_UNDEF, index = S->trail_size - 1;
    S->learnt.size = 0;
    ivec_push(&S->learnt, LIT_UNDEF);
    do {
        CRef c = conflict;
        if (clause_learnt(S, c)) {
            bump_clause(S, c);
            /* a clause used in analysis may have become tighter: keep its best LBD */
            unsigned lbd = compute_lbd(S, clause_lits(S, c), (int)clause_size(S, c));
            if (lbd + 1 < clause_lbd(S, c)) set_clause_lbd(S, c, lbd);
        }
        int *lits = clause_lits(S, c);
        unsigned size = clause_size(S, c);
        for (unsigned k = (p == LIT_UNDEF) ? 0 : 1; k < size; k++) {
            int q = lits[k], v = lit_var(q);
            if (S->seen[v] || S->level[v] == 0) continue;
            bump_var(S, v);
            S->seen[v] = 1;
            if (S->level[v] >= decision_level(S)) path++;
            else ivec_push(&S->learnt, q);
        }
        while (!S->seen[lit_var(S->trail[index--])]) {}
        p = S->trail[index + 1];
        conflict = S->reason[lit_var(p)];
        S->seen[lit_var(p)] = 0;
        path--;
    } while (path > 0);
    S->learnt.data[0] = lit_neg(p);

    /* minimisation */
    S->to_clear.size = 0;
    for (int i = 0; i < S->learnt.size; i++) ivec_push(&S->to_clear, S->learnt.data[i]);
    int kept = 1;
    if (MINIMIZE_MODE == 2) {
        uint32_t levels = 0;
        for (int i = 1; i < S->learnt.size; i++) levels |= abstract_level(S, lit_var(S->learnt.data[i]));
        for (int i = 1; i < S->learnt.size; i++) {
            int l = S->learnt.data[i];
            if (S->reason[lit_var(l)] == CREF_UNDEF || !lit_redundant(S, l, levels)) S->learnt.data[kept++] = l;
        }
    } else if (MINIMIZE_MODE == 1) {
        for (int i = 1; i < S->learnt.size; i++) {
            int l = S->learnt.data[i];
            CRef c = S->reason[lit_var(l)];
            int keep = (c == CREF_UNDEF);
            if (!keep) {
                int *lits = clause_lits(S, c);
                unsigned size = clause_size(S, c);
                for (unsigned k = 1; k < size; k++) {
                    int v = lit_var(lits[k]);
                    if (!S->seen[v] && S->level[v] > 0) { keep = 1; break; }
                }
            }
            if (keep) S->learnt.data[kept++] = l;
        }
    } else {
        kept = S->learnt.size;
    }
    S->learnt.size = kept;
    for (int i = 0; i < S->to_clear.size; i++) S->seen[lit_var(S->to_clear.data[i])] = 0;

    /* backjump level: the highest level among the other literals, which goes to position 1 */
    if (S->learnt.size == 1) return 0;
    int best = 1;
    for (int i = 2; i < S->learnt.size; i++)
        if (S->level[lit_var(S->learnt.data[i])] > S->level[lit_var(S->learnt.data[best])]) best = i;
    int tmp = S->learnt.data[1]; S->learnt.data[1] = S->learnt.data[best]; S->learnt.data[best] = tmp;
    return S->level[lit_var(S->learnt.data[1])];
}

/* ------------------------------------------------------------------ learnt-clause database */

typedef struct { CRef cref; double score; } Ranked;
static int by_score(const void *a, const void *b) {
    double x = ((const Ranked *)a)->score, y = ((const Ranked *)b)->score;
    if (x != x) x = -INFINITY;  /* a NaN score is the least worth keeping */
    if (y != y) y = -INFINITY;
    return (x > y) - (x < y);
}

/* Move every live clause into a fresh arena and rebuild the watch lists (watches are always on
 * positions 0 and 1 of a clause, so rebuilding them is exact at any decision level). */
static void compact(Solver *S) {
    size_t cap = S->mem_size - S->mem_wasted + 1024;
    uint32_t *fresh = xrealloc(NULL, cap * sizeof(uint32_t));
    size_t used = 0;
    IntVec *lists[2] = {&S->originals, &S->learnts};
    for (int l = 0; l < 2; l++) {
        for (int i = 0; i < lists[l]->size; i++) {
            CRef c = (CRef)lists[l]->data[i];
            size_t words = HEADER_WORDS + clause_size(S, c);
            memcpy(&fresh[used], &S->mem[c], words * sizeof(uint32_t));
            S->mem[c + 1] |= FLAG_MOVED;
            S->mem[c + 2] = (uint32_t)used;
            lists[l]->data[i] = (int)used;
            used += words;
        }
    }
    for (int i = 0; i < S->trail_size; i++) {
        int var = lit_var(S->trail[i]);
        CRef c = S->reason[var];
        if (c == CREF_UNDEF) continue;
        S->reason[var] = (S->mem[c + 1] & FLAG_MOVED) ? S->mem[c + 2] : CREF_UNDEF;
    }
    free(S->mem);
    S->mem = fresh; S->mem_size = used; S->mem_cap = cap; S->mem_wasted = 0;
    for (int lit = 0; lit < 2 * S->num_vars; lit++) S->watches[lit].size = 0;
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < lists[l]->size; i++) attach_clause(S, (CRef)lists[l]->data[i]);
}

static void reduce_db(Solver *S) {
    S->stats.reductions++;
    int n = S->learnts.size, candidates = 0, kept = 0;
    Ranked *ranked = xrealloc(NULL, (size_t)(n ? n : 1) * sizeof(Ranked));
    for (int i = 0; i < n; i++) {
        CRef c = (CRef)S->learnts.data[i];
        if (clause_locked(S, c) || clause_lbd(S, c) <= GLUE_LBD || clause_size(S, c) <= 2) {
            S->learnts.data[kept++] = (int)c;
        } else {
            ranked[candidates].cref = c;
            ranked[candidates].score = learnt_keep_score(S, c);
            candidates++;
        }
    }
    qsort(ranked, (size_t)candidates, sizeof(Ranked), by_score);
    double fraction = REDUCE_FRACTION;
    if (!(fraction >= 0)) fraction = 0;
    if (fraction > 1) fraction = 1;
    int remove = (int)(candidates * fraction);
    for (int i = 0; i < candidates; i++) {
        CRef c = ranked[i].cref;
        if (i < remove) { S->mem[c + 1] |= FLAG_DELETED; S->mem_wasted += HEADER_WORDS + clause_size(S, c); }
        else S->learnts.data[kept++] = (int)c;
    }
    S->learnts.size = kept;
    free(ranked);
    compact(S);
}

/* ------------------------------------------------------------------ search */

static int pick_branch_lit(Solver *S) {
    int next = -1;
    if (RANDOM_DECISION_FREQ > 0 && S->heap_size > 0 && random_double(S) < RANDOM_DECISION_FREQ) {
        next = S->heap[(int)(random_double(S) * S->heap_size) % S->heap_size];
        if (var_value(S, next) != 0) next = -1;
    }
    while (next < 0 || var_value(S, next) != 0) {
        if (S->heap_size == 0) return LIT_UNDEF;
        next = heap_pop(S);
    }
    int phase = pick_phase(S, next) ? 1 : 0;
    return make_lit(next, !phase);
}

/* 10 = satisfiable, 20 = unsatisfiable */
static int solve(Solver *S) {
    if (propagate(S) != CREF_UNDEF) return 20;
    for (;;) {
        CRef conflict = propagate(S);
        if (conflict != CREF_UNDEF) {
            S->stats.conflicts++;
            S->stats.conflicts_since_restart++;
            if (decision_level(S) == 0) return 20;
            int back = analyze(S, conflict);
            unsigned lbd = compute_lbd(S, S->learnt.data, S->learnt.size);
            S->stats.last_lbd = lbd;
            S->stats.last_size = (unsigned)S->learnt.size;
            S->stats.lbd_fast += LBD_FAST_ALPHA * (lbd - S->stats.lbd_fast);
            S->stats.lbd_slow += LBD_SLOW_ALPHA * (lbd - S->stats.lbd_slow);
            S->stats.trail_average += 0.01 * (S->trail_size - S->stats.trail_average);
            cancel_until(S, back);
            if (S->learnt.size == 1) {
                enqueue(S, S->learnt.data[0], CREF_UNDEF);
            } else {
                CRef c = alloc_clause(S, S->learnt.data, S->learnt.size, 1);
                set_clause_lbd(S, c, lbd);
                ivec_push(&S->learnts, (int)c);
                attach_clause(S, c);
                bump_clause(S, c);
                enqueue(S, S->learnt.data[0], c);
            }
            double decay = var_decay_now(S);
            if (!(decay > 0 && decay <= 1)) decay = 0.95;
            S->var_inc /= decay;
            S->cla_inc /= CLAUSE_DECAY;
        } else {
            if (restart_due(S)) {
                S->stats.restarts++;
                S->stats.conflicts_since_restart = 0;
                cancel_until(S, 0);
                continue;
            }
            if (reduce_due(S)) reduce_db(S);
            int lit = pick_branch_lit(S);
            if (lit == LIT_UNDEF) return 10;
            S->stats.decisions++;
            ivec_push(&S->trail_lim, S->trail_size);
            enqueue(S, lit, CREF_UNDEF);
        }
    }
}

/* ------------------------------------------------------------------ input */

static char *read_all(FILE *f, size_t *length) {
    size_t cap = 1 << 16, n = 0;
    char *buf = xrealloc(NULL, cap);
    for (;;) {
        if (n + 1 >= cap) { cap *= 2; buf = xrealloc(buf, cap); }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0) break;
        n += got;
    }
    buf[n] = 0;
    *length = n;
    return buf;
}

static void init_solver(Solver *S, int num_vars) {
    memset(S, 0, sizeof *S);
    S->num_vars = num_vars;
    size_t n = (size_t)num_vars + 1, lits = 2 * n;
    S->value = calloc(lits, 1);
    S->watches = calloc(lits, sizeof(WatchList));
    S->level = calloc(n, sizeof(int));
    S->reason = malloc(n * sizeof(CRef));
    S->trail = malloc(n * sizeof(int));
    S->activity = calloc(n, sizeof(double));
    S->saved_phase = malloc(n);
    S->heap = malloc(n * sizeof(int));
    S->heap_index = malloc(n * sizeof(int));
    S->seen = calloc(n, 1);
    S->level_stamp = calloc(n + 1, sizeof(unsigned));
    if (!S->value || !S->watches || !S->level || !S->reason || !S->trail || !S->activity || !S->saved_phase
        || !S->heap || !S->heap_index || !S->seen || !S->level_stamp) die("out of memory");
    S->var_inc = 1.0; S->cla_inc = 1.0;
    S->rng = RANDOM_SEED ? RANDOM_SEED : 1;
    S->restart_limit = LUBY_UNIT;
    S->luby_index = 0;
    S->next_reduce = REDUCE_FIRST;
    for (int v = 0; v < num_vars; v++) {
        S->reason[v] = CREF_UNDEF;
        S->saved_phase[v] = DEFAULT_PHASE ? 1 : 0;
        S->heap_index[v] = -1;
        heap_insert(S, v);
    }
}

/* Adds one input clause at level 0 (duplicates removed, tautologies and satisfied clauses
 * dropped); returns 0 when the formula is already unsatisfiable. */
static int add_input_clause(Solver *S, int *lits, int size) {
    int kept = 0;
    for (int i = 0; i < size; i++) {
        int l = lits[i], dup = 0;
        if (S->value[l] == 1) return 1;
        if (S->value[l] == -1) continue;
        for (int k = 0; k < kept; k++) {
            if (lits[k] == l) { dup = 1; break; }
            if (lits[k] == lit_neg(l)) return 1;
        }
        if (!dup) lits[kept++] = l;
    }
    if (kept == 0) return 0;
    if (kept == 1) { enqueue(S, lits[0], CREF_UNDEF); return propagate(S) == CREF_UNDEF; }
    CRef c = alloc_clause(S, lits, kept, 0);
    ivec_push(&S->originals, (int)c);
    attach_clause(S, c);
    return 1;
}

/* Parses DIMACS; returns 0 if the formula is found unsatisfiable while loading. */
static int load_dimacs(Solver *S, char *text) {
    char *p = text;
    int header = 0, ok = 1;
    long declared_vars = 0;
    IntVec clause = {0};
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) break;
        if (*p == 'c') { while (*p && *p != '\n') p++; continue; }
        if (*p == '%') break;  /* SATLIB trailer */
        if (*p == 'p') {
            long clauses;
            if (header || sscanf(p, "p cnf %ld %ld", &declared_vars, &clauses) != 2 || declared_vars < 0
                || declared_vars > 100000000)
                die("bad or repeated 'p cnf <vars> <clauses>' header");
            header = 1;
            init_solver(S, (int)declared_vars);
            while (*p && *p != '\n') p++;
            continue;
        }
        if (!header) die("clause before the 'p cnf' header");
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p) die("a token that is not an integer");
        p = end;
        if (x == 0) {
            if (ok) ok = add_input_clause(S, clause.data, clause.size);
            clause.size = 0;
        } else {
            if (x > declared_vars || x < -declared_vars) die("a literal beyond the declared variables");
            ivec_push(&clause, make_lit((int)(labs(x) - 1), x < 0));
        }
    }
    if (!header) die("no 'p cnf' header");
    if (clause.size > 0 && ok) ok = add_input_clause(S, clause.data, clause.size);
    free(clause.data);
    return ok;
}

int main(int argc, char **argv) {
    FILE *in = stdin;
    if (argc > 1 && !(in = fopen(argv[1], "rb"))) die("cannot open the input file");
    size_t length;
    char *text = read_all(in, &length);
    if (in != stdin) fclose(in);
    static Solver solver;
    int result = load_dimacs(&solver, text) ? solve(&solver) : 20;
    free(text);
    Solver *S = &solver;
    fprintf(stderr, "c conflicts %llu decisions %llu propagations %llu restarts %llu reductions %llu\n",
            (unsigned long long)S->stats.conflicts, (unsigned long long)S->stats.decisions,
            (unsigned long long)S->stats.propagations, (unsigned long long)S->stats.restarts,
            (unsigned long long)S->stats.reductions);
    if (result == 20) { printf("s UNSATISFIABLE\n"); return 0; }
    printf("s SATISFIABLE\n");
    /* the model, 10 literals a line */
    for (int v = 0; v < S->num_vars; v++) {
        if (v % 10 == 0) printf(v ? "\nv" : "v");
        printf(" %d", var_value(S, v) == -1 ? -(v + 1) : (v + 1));
    }
    printf(S->num_vars ? "\nv 0\n" : "v 0\n");
    return 0;
}
