/*
 * The table of the simulated extra lab lines. The list expands into the
 * declarations and the table, so they cannot disagree; its order is the
 * order of the fault devices SD_REGLO... in sim_faults.h.
 */
#include "sim_lines.h"

#define SIM_LINE_LIST(X) \
    X(reglo)           \
    X(harvard)         \
    X(hamilton)        \
    X(ob1)

#define SIM_LINE_DECLARE(n) extern const struct sim_line_ops sim_##n##_line;
#define SIM_LINE_ENTRY(n) &sim_##n##_line,

SIM_LINE_LIST(SIM_LINE_DECLARE)

const struct sim_line_ops *const sim_lines[] = { SIM_LINE_LIST(SIM_LINE_ENTRY) NULL };
const size_t sim_n_lines = sizeof sim_lines / sizeof sim_lines[0] - 1;
