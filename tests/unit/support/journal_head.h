/* A version 2 journal's members, up to its setpoints, for tests that decode
 * journals written by hand. */
#ifndef PERFUSE_TEST_JOURNAL_HEAD_H
#define PERFUSE_TEST_JOURNAL_HEAD_H

/* The members every journal has (version 2), up to its setpoints. */
#define JOURNAL_HEAD                                                                                  \
    "{\"journal\": 2, \"run_id\": \"abcd0123456789abcdef0123456789ab\", \"file\": \"/data/r.h5\","   \
    " \"start_wall_ns\": 1, \"rig\": \"sim\", \"operator\": \"\", \"protocol_path\": \"p.yaml\","       \
    " \"protocol_text\": \"perfuse: 1\","                                                              \
    " \"rig_sha256\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","            \
    " \"rig_digest\": \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\","            \
    " \"protocol_sha256\": \"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\","       \
    " \"position\": {\"index\": [0], \"repeat_pass\": [0], \"shift_ns\": 0, \"plan_pos_ns\": 0,"        \
    " \"step_start_ns\": 0, \"step_row\": 0, \"row_planned_start\": 0, \"row_start\": 0,"            \
    " \"paused\": true, \"pause_ns\": 0}, "

#endif
