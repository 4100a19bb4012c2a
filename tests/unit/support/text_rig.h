/*
 * A rig written as text, for tests of what the rig loader parses and refuses:
 * two buses, a syringe pump (pump1.flow) and a chip sensor (chip1.pressure,
 * chip1.flow, chip1.o2), in 8 lines; whatever a case adds starts at line 9.
 */
#ifndef PERFUSE_TEST_TEXT_RIG_H
#define PERFUSE_TEST_TEXT_RIG_H

#include "base/diag.h"
#include "plan/rig.h"

/* The 8 lines every case starts from. */
extern const char text_rig_base[];

/* Load text_rig_base followed by extra; the rig (the caller frees it) or NULL,
 * the diagnostics in d (initialised here; the caller frees them). */
struct rig *text_rig_load(const char *extra, struct diag *d);

#endif
