/*
 * The driver contract: the steps every serial driver must take the same way,
 * run for each driver in one table (New Era, Harvard, Reglo, Hamilton). For
 * each, a device on a real pty is played by a scripted responder (exact bytes
 * in, canned replies out), and the driver must:
 *
 *   - connect, write setpoints and read them back, and go to its safe state,
 *     sending exactly the bytes of its protocol;
 *   - reconnect to a device that is running without disturbing it;
 *   - call a device that cannot do what it was told an error, never a value;
 *   - turn each refusal by the device into -EREMOTEIO, in the device's words;
 *   - refuse a setpoint that is not a number or a channel it does not have
 *     before anything is sent;
 *   - time out on silence and call garbage garbled: never a number, and the
 *     value it was given is left as it was;
 *   - reassemble a reply that arrives in pieces;
 *   - share one line with another device by address;
 *   - say "not connected" on a closed line, and let it be opened again;
 *   - report every error of a bad rig entry, each at its key.
 *
 * Every read checks that a failed read leaves the value untouched. What is
 * particular to one protocol (number formats, reply framing, its simulator
 * model) stays in that driver's own test file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config_errors.h"
#include "drivers/driver.h"
#include "drivers/link.h"
#include "pty_rig.h"
#include "pty_script.h"

#define LINK_TIMEOUT_MS 100
#define UNTOUCHED 12345.0
#define N(a) (sizeof a / sizeof a[0])

/* ------------------------------------------------------------------------ */
/* The table's language                                                     */
/* ------------------------------------------------------------------------ */

enum op_kind { OP_CONNECT, OP_READ, OP_WRITE, OP_SAFE };

/* One call into the driver and what it must give. */
struct op {
    enum op_kind kind;
    int dev;                /* 0: the row's device; 1: the second device on the line */
    size_t ch;              /* READ, WRITE */
    double value;           /* WRITE: the setpoint; READ that succeeds: the value read */
    double tol;             /* READ: how far the value may be from it */
    int rc;                 /* what the call must return */
    const char *err;        /* NULL: not checked; "=TEXT": link.err is TEXT; else a part of it */
    const char *err2;       /* another part of link.err, or NULL */
};

#define CONNECT(r_, e_) { .kind = OP_CONNECT, .rc = (r_), .err = (e_) }
#define READ_OK(c_, v_, t_) { .kind = OP_READ, .ch = (c_), .value = (v_), .tol = (t_) }
#define READ_FAILS(c_, r_, e_) { .kind = OP_READ, .ch = (c_), .rc = (r_), .err = (e_) }
#define WRITE(c_, v_, r_, e_) { .kind = OP_WRITE, .ch = (c_), .value = (v_), .rc = (r_), .err = (e_) }
#define SAFE(r_, e_) { .kind = OP_SAFE, .rc = (r_), .err = (e_) }
#define READ2_OK(c_, v_, t_) { .kind = OP_READ, .dev = 1, .ch = (c_), .value = (v_), .tol = (t_) }
#define WRITE2(c_, v_, r_, e_) { .kind = OP_WRITE, .dev = 1, .ch = (c_), .value = (v_), .rc = (r_), .err = (e_) }
#define SAFE2(r_, e_) { .kind = OP_SAFE, .dev = 1, .rc = (r_), .err = (e_) }

/* A script the device side plays, and what the driver must make of it. */
struct exchange {
    const struct step *steps;
    size_t n_steps;
    const struct op *ops;
    size_t n_ops;
    const struct dev_param *params;     /* the device's entry; NULL: the row's */
    size_t n_params;
    const char *name2;                  /* a second device on the line, or NULL */
    const struct dev_param *params2;
    size_t n_params2;
    int min_repeats;                    /* repeating steps must have answered this often */
};

#define EXCHANGE(s_, o_) { .steps = (s_), .n_steps = N(s_), .ops = (o_), .n_ops = N(o_) }
#define EXCHANGE_P(s_, o_, p_) { .steps = (s_), .n_steps = N(s_), .ops = (o_), .n_ops = N(o_), \
                                 .params = (p_), .n_params = N(p_) }
#define SHARED(s_, o_, n2_, p2_) { .steps = (s_), .n_steps = N(s_), .ops = (o_), .n_ops = N(o_), \
                                   .name2 = (n2_), .params2 = (p2_), .n_params2 = N(p2_) }

/* A bad rig entry and the errors it must give (want), or only the first one's key and text. */
struct bad_entry {
    const struct dev_param *params;
    size_t n;
    const struct config_error_want *want;
    size_t n_want;
    const char *first_key;
    const char *first_text;
};

#define BAD(p_, w_) { .params = (p_), .n = N(p_), .want = (w_), .n_want = N(w_) }
#define BAD_FIRST(p_, k_, t_) { .params = (p_), .n = N(p_), .first_key = (k_), .first_text = (t_) }

/* A driver and its answers to every step of the contract. */
struct contract_row {
    const char *driver;
    const char *name;                   /* the device's name in the rig and in messages */
    const struct link_config *line;
    const struct dev_param *params;
    size_t n_params;
    size_t n_channels;
    double setpoint;                    /* a setpoint it would take on channel 0 */
    struct exchange confirm, reconnect, cannot, refused, before_sending, bad_replies, split, shared;
    const struct bad_entry *bad;
    size_t n_bad;
};

/* ------------------------------------------------------------------------ */
/* New Era                                                                  */
/* ------------------------------------------------------------------------ */

static const struct link_config ne_line = { .name = "pumps", .baud = 19200, .parity = 'N', .data_bits = 8,
                                            .stop_bits = 1, .timeout_ms = LINK_TIMEOUT_MS };
static const struct dev_param ne_params[] = { { "address", "0", 1, 1 }, { "syringe.diameter", "14.57 mm", 1, 1 },
                                              { "syringe.volume", "10 mL", 1, 1 } };
#define NE_CONNECT_STEPS { "0DIA 14.57\r", "\x02" "00S\x03", 0, false }, { "0DIR INF\r", "\x02" "00S\x03", 0, false }

static const struct step ne_confirm_steps[] = {
    NE_CONNECT_STEPS,
    /* write 12.5: rate, then RUN because the pump is stopped */
    { "0RAT 12.50 UM\r", "\x02" "00S\x03", 0, false }, { "0RUN\r", "\x02" "00I\x03", 0, false },
    /* the same setpoint again: one RAT */
    { "0RAT 12.50 UM\r", "\x02" "00I\x03", 0, false },
    /* a new rate while running: one RAT */
    { "0RAT 0.500 UM\r", "\x02" "00I\x03", 0, false },
    { "0RAT\r", "\x02" "00I0.500UM\x03", 0, false },
    { "0DIS\r", "\x02" "00II0.250W0.000ML\x03", 0, false },
    /* reversing: stop first, then direction, rate, run */
    { "0STP\r", "\x02" "00S\x03", 0, false }, { "0DIR WDR\r", "\x02" "00S\x03", 0, false },
    { "0RAT 3.000 UM\r", "\x02" "00S\x03", 0, false }, { "0RUN\r", "\x02" "00W\x03", 0, false },
    { "0RAT\r", "\x02" "00W3.000UM\x03", 0, false },
    /* safe state, then the rate reads back as 0 although 3 is programmed */
    { "0STP\r", "\x02" "00S\x03", 0, false },
    { "0RAT\r", "\x02" "00S3.000UM\x03", 0, false },
    /* a stop is always sent, whatever the driver believes */
    { "0STP\r", "\x02" "00S\x03", 0, false },
};
static const struct op ne_confirm_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 12.5, 0, NULL),
    WRITE(0, 12.5, 0, NULL),
    WRITE(0, 0.5, 0, NULL),
    READ_OK(0, 0.5, 1e-12),
    READ_OK(1, 250, 1e-9),
    WRITE(0, -3, 0, NULL),
    READ_OK(0, -3, 1e-12),
    SAFE(0, NULL),
    READ_OK(0, 0, 0),
    WRITE(0, 0, 0, NULL),
};
static const struct step ne_reconnect_steps[] = {
    /* the pump refuses DIA while it pumps; it has our syringe, so all is well */
    { "0DIA 14.57\r", "\x02" "00W?NA\x03", 0, false },
    { "0DIA\r", "\x02" "00W14.57\x03", 0, false },
    /* no DIR INF: that would reverse a withdrawal; the setpoint needs only RAT */
    { "0RAT 2.000 UM\r", "\x02" "00W\x03", 0, false },
    /* the same with another syringe in the pump: refused */
    { "0DIA 14.57\r", "\x02" "00I?NA\x03", 0, false },
    { "0DIA\r", "\x02" "00I12.06\x03", 0, false },
};
static const struct op ne_reconnect_ops[] = {
    CONNECT(0, "="),
    WRITE(0, -2, 0, NULL),
    CONNECT(-EREMOTEIO, "12.06 mm syringe"),
};
static const struct step ne_cannot_steps[] = {
    NE_CONNECT_STEPS,
    { "0RAT 5.000 UM\r", "\x02" "00S\x03", 0, false }, { "0RUN\r", "\x02" "00I\x03", 0, false },
    { "0RAT\r", "\x02" "00A?S\x03", 0, false },
    /* after an alarm nothing is assumed: stop, direction, rate, run */
    { "0STP\r", "\x02" "00S\x03", 0, false }, { "0DIR INF\r", "\x02" "00S\x03", 0, false },
    { "0RAT 5.000 UM\r", "\x02" "00S\x03", 0, false }, { "0RUN\r", "\x02" "00A?S\x03", 0, false },
    /* RUN answered with a stopped prompt: the pump did not start */
    { "0STP\r", "\x02" "00S\x03", 0, false }, { "0DIR INF\r", "\x02" "00S\x03", 0, false },
    { "0RAT 5.000 UM\r", "\x02" "00S\x03", 0, false }, { "0RUN\r", "\x02" "00S\x03", 0, false },
};
static const struct op ne_cannot_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 5, 0, NULL),
    READ_FAILS(0, -EREMOTEIO, "=pump1: motor stalled (A?S): syringe empty or blocked"),
    WRITE(0, 5, -EREMOTEIO, "=pump1: motor stalled (A?S): syringe empty or blocked"),
    WRITE(0, 5, -EREMOTEIO, "=pump1: the pump did not start after RUN (status S)"),
};
static const struct step ne_refused_steps[] = {
    NE_CONNECT_STEPS,
    { "0RAT 900.0 UM\r", "\x02" "00S?OOR\x03", 0, false },
    { "0DIS\r", "\x02" "00S?\x03", 0, false },
    { "0RAT 1.000 UM\r", "\x02" "00S\x03", 0, false }, { "0RUN\r", "\x02" "00S?NA\x03", 0, false },
};
static const struct op ne_refused_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 900, -EREMOTEIO, "=pump1: pump refused 'RAT 900.0 UM': value out of range (?OOR)"),
    READ_FAILS(1, -EREMOTEIO, "'DIS': command not recognised (?)"),
    WRITE(0, 1, -EREMOTEIO, "not applicable now (?NA)"),
    /* Refused before anything is sent: the script has no step for these. */
    WRITE(0, 1500, -ERANGE, "beyond max_flow"),
    WRITE(0, 1e-7, -ERANGE, NULL),
    WRITE(0, NAN, -EINVAL, NULL),
    WRITE(1, 5, -EINVAL, NULL),
};
static const struct step ne_bad_steps[] = {
    { "0RAT\r", NULL, 0, false },                                          /* silence */
    { "0RAT\r", "\x02" "01I1.000UM\x03", 0, false },                       /* another pump */
    { "0RAT\r", "\x02" "00I1.000UM", 0, false },                           /* no ETX */
    { "0RAT\r", "noise\x02" "00I2.000UM\x03", 0, false },                  /* junk first */
    { "0RAT\r", "\x02" "01S\x03\x02" "00I4.000UM\x03", 0, false },         /* theirs, then ours */
    { "0RAT\r", "line noise", 0, false },                                  /* no frame at all */
    { "0RAT\r", "\x02" "00Q\x03", 0, false },                              /* unknown prompt */
    { "0RAT\r", "\x02" "00I12.5XX\x03", 0, false },                        /* bad rate */
    { "0RAT\r", "\x02" "00I\x03", 0, false },                              /* no rate at all */
    { "0DIS\r", "\x02" "00SI0.1\x03", 0, false },                          /* bad volume */
};
static const struct op ne_bad_ops[] = {
    READ_FAILS(0, -ETIMEDOUT, "=pump1: no reply to 'RAT' within 100 ms"),
    READ_FAILS(0, -ETIMEDOUT, "address 1 answered"),
    READ_FAILS(0, -ETIMEDOUT, "=pump1: incomplete reply to 'RAT' within 100 ms: '\\x0200I1.000UM'"),
    READ_OK(0, 2, 0),
    READ_OK(0, 4, 0),
    READ_FAILS(0, -ETIMEDOUT, "=pump1: no reply to 'RAT' within 100 ms, only noise: 'line noise'"),
    READ_FAILS(0, -EBADMSG, "=pump1: garbled reply to 'RAT': '\\x0200Q\\x03'"),
    READ_FAILS(0, -EBADMSG, "cannot parse the pump's reply '12.5XX'"),
    READ_FAILS(0, -EBADMSG, NULL),
    READ_FAILS(1, -EBADMSG, NULL),
};
static const struct step ne_split_steps[] = {
    { "0RAT\r", "\x02" "00I8.000UM\x03", 7, false },
    { "0RAT\r", "\x02" "0", 2, false },
};
static const struct op ne_split_ops[] = {
    READ_OK(0, 8, 0),
    READ_FAILS(0, -ETIMEDOUT, NULL),
};
static const struct step ne_shared_steps[] = {
    { "12RAT\r", "\x02" "12I1.000UM\x03", 0, false },
    { "0RAT\r", "\x02" "00W2.000UM\x03", 0, false },
    { "12STP\r", "\x02" "12S\x03", 0, false },
};
static const struct dev_param ne_pump12[] = { { "address", "12", 1, 1 }, { "syringe.diameter", "4.78 mm", 1, 1 } };
static const struct op ne_shared_ops[] = {
    READ2_OK(0, 1, 0),
    READ_OK(0, -2, 0),
    SAFE2(0, NULL),
};
static const struct dev_param ne_bad1[] = { { "address", "100", 1, 1 }, { "syringe.diameter", "14.57 mL", 1, 1 },
                                            { "max_flow", "0 uL/min", 1, 1 }, { "adress", "1", 1, 1 } };
static const struct config_error_want ne_want1[] = {
    { "adress", "did you mean 'address'?" },
    { "syringe.diameter", "a length" },
    { "address", "0 to 99, found '100'" },
    { "max_flow", "above 0" },
};
static const struct dev_param ne_bad2[] = { { "address", "1", 1, 1 } };
static const struct config_error_want ne_want2[] = { { "", "inside diameter" } };
static const struct dev_param ne_bad3[] = { { "syringe.diameter", "60 mm", 1, 1 } };
static const struct bad_entry ne_bad[] = {
    BAD(ne_bad1, ne_want1), BAD(ne_bad2, ne_want2), BAD_FIRST(ne_bad3, NULL, "0.1 to 50 mm"),
};

/* ------------------------------------------------------------------------ */
/* Harvard                                                                  */
/* ------------------------------------------------------------------------ */

static const struct link_config hv_line = { .name = "syringes", .baud = 115200, .parity = 'N', .data_bits = 8,
                                            .stop_bits = 1, .timeout_ms = LINK_TIMEOUT_MS };
static const struct dev_param hv_params[] = { { "address", "0", 1, 1 }, { "syringe.diameter", "14.57 mm", 1, 1 },
                                              { "syringe.volume", "10 mL", 1, 1 } };
/* A pump after power-up has another syringe's diameter: connect sets ours. */
#define HV_CONNECT_STEPS { "diameter\r", "\r\n10 mm\r\n00:", 0, false }, { "diameter 14.57\r", "\r\n00:", 0, false }

static const struct step hv_confirm_steps[] = {
    HV_CONNECT_STEPS,
    /* write 12.5: the rate, then irun because the pump is idle */
    { "irate 12.5 ul/min\r", "\r\n00:", 0, false }, { "irun\r", "\r\n00>", 0, false },
    { "crate\r", "\r\n12.5 ul/min\r\n00>", 0, false },
    /* a new rate while infusing: one irate, it applies at once */
    { "irate 20 ul/min\r", "\r\n00>", 0, false },
    { "ivolume\r", "\r\n1.234 ml\r\n00>", 0, false },
    /* reversing: the withdraw rate, a stop, then wrun */
    { "wrate 5 ul/min\r", "\r\n00>", 0, false }, { "stop\r", "\r\n00:", 0, false },
    { "wrun\r", "\r\n00<", 0, false },
    { "crate\r", "\r\n5 ul/min\r\n00<", 0, false },
    /* safe state; then idle reads 0 whatever rate the pump still holds */
    { "stop\r", "\r\n00:", 0, false },
    { "crate\r", "\r\n5 ul/min\r\n00:", 0, false },
    /* a zero setpoint is a stop, always sent */
    { "stop\r", "\r\n00:", 0, false },
    /* a pump that reached a target delivers nothing */
    { "crate\r", "\r\n0 ul/min\r\n00T*", 0, false },
    /* a tiny rate goes in nl/min */
    { "irate 50 nl/min\r", "\r\n00:", 0, false }, { "irun\r", "\r\n00>", 0, false },
};
static const struct op hv_confirm_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 12.5, 0, NULL),
    READ_OK(0, 12.5, 1e-12),
    WRITE(0, 20, 0, NULL),
    READ_OK(1, 1234, 1e-9),
    WRITE(0, -5, 0, NULL),
    READ_OK(0, -5, 1e-12),
    SAFE(0, NULL),
    READ_OK(0, 0, 0),
    WRITE(0, 0, 0, NULL),
    READ_OK(0, 0, 0),
    WRITE(0, 0.05, 0, NULL),
};
static const struct step hv_reconnect_steps[] = {
    /* the pump withdraws with our syringe: nothing is sent, nothing stops */
    { "diameter\r", "\r\n14.57 mm\r\n00<", 0, false },
    /* the setpoint for the same direction needs only the rate */
    { "wrate 2 ul/min\r", "\r\n00<", 0, false },
    /* another syringe while running: the pump refuses, the driver says why */
    { "diameter\r", "\r\n12.06 mm\r\n00>", 0, false },
    { "diameter 14.57\r", "\r\nCommand error\r\n00>", 0, false },
    /* a diameter that is no number */
    { "diameter\r", "\r\nabc\r\n00:", 0, false },
};
static const struct op hv_reconnect_ops[] = {
    CONNECT(0, "="),
    WRITE(0, -2, 0, NULL),
    CONNECT(-EREMOTEIO, "=hpump1: the pump is infusing with a 12.06 mm syringe, the rig "
            "says 14.57 mm; stop it to change the diameter"),
    CONNECT(-EBADMSG, "cannot parse the diameter 'abc'"),
};
static const struct step hv_cannot_steps[] = {
    HV_CONNECT_STEPS,
    { "irate 5 ul/min\r", "\r\n00:", 0, false }, { "irun\r", "\r\n00>", 0, false },
    /* the syringe ran empty: the prompt says stalled */
    { "crate\r", "\r\n0 ul/min\r\n00*", 0, false },
    /* the volume the pump counted is still a fact */
    { "ivolume\r", "\r\n3.5 ul\r\n00*", 0, false },
    /* a new setpoint: the run command clears the stall, and the pump stalls again */
    { "irate 5 ul/min\r", "\r\n00*", 0, false }, { "irun\r", "\r\n00*", 0, false },
    /* a run that does not start is no success either */
    { "irate 5 ul/min\r", "\r\n00:", 0, false }, { "irun\r", "\r\n00:", 0, false },
    /* safe state ends the stall */
    { "stop\r", "\r\n00:", 0, false },
    { "crate\r", "\r\n0 ul/min\r\n00:", 0, false },
};
static const struct op hv_cannot_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 5, 0, NULL),
    READ_FAILS(0, -EREMOTEIO, "=hpump1: stalled: syringe empty or blocked (prompt '*' after 'crate')"),
    READ_OK(1, 3.5, 1e-12),
    WRITE(0, 5, -EREMOTEIO, "=hpump1: stalled: syringe empty or blocked (prompt '*' after 'irun')"),
    WRITE(0, 5, -EREMOTEIO, "=hpump1: the pump is idle after 'irun'"),
    SAFE(0, NULL),
    READ_OK(0, 0, 0),
};
static const struct step hv_refused_steps[] = {
    HV_CONNECT_STEPS,
    { "irate 900 ul/min\r", "\r\nOut of range\r\n00:", 0, false },
    { "ivolume\r", "\r\nUnknown command\r\n00:", 0, false },
    { "wrate 1 ul/min\r", "\r\n00:", 0, false }, { "wrun\r", "\r\nCommand error\r\n00:", 0, false },
    { "stop\r", "\r\n00>", 0, false },
};
static const struct op hv_refused_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 900, -EREMOTEIO, "=hpump1: pump refused 'irate 900 ul/min': Out of range"),
    READ_FAILS(1, -EREMOTEIO, "=hpump1: pump refused 'ivolume': Unknown command"),
    WRITE(0, -1, -EREMOTEIO, "'wrun': Command error"),
    /* A stop the pump does not obey is a failure, not a success. */
    SAFE(-EREMOTEIO, "=hpump1: the pump is still infusing after 'stop'"),
    /* Refused before anything is sent: the script has no step for these. */
    WRITE(0, 1500, -ERANGE, "beyond max_flow"),
    WRITE(0, 1e-9, -ERANGE, NULL),
    WRITE(0, NAN, -EINVAL, NULL),
    WRITE(1, 5, -EINVAL, NULL),
    READ_FAILS(2, -EINVAL, NULL),
};
static const struct step hv_bad_steps[] = {
    { "crate\r", NULL, 0, false },                                         /* silence */
    { "crate\r", "\r\n1 ul/min\r\n01>", 0, false },                        /* another pump */
    { "crate\r", "\r\n1 ul/min\r\n", 0, false },                           /* no prompt */
    { "crate\r", "\r\n\x01\x02\xfe\xff\x10", 0, false },                   /* line noise */
    { "crate\r", "\r\n12.5 XX\r\n00>", 0, false },                         /* bad rate */
    { "crate\r", "\r\n00>", 0, false },                                    /* no rate at all */
    { "ivolume\r", "\r\n0.1\r\n00>", 0, false },                           /* bad volume */
    /* theirs, then ours, in one write */
    { "crate\r", "\r\n3 ul/min\r\n01<\r\n4 ul/min\r\n00>", 0, false },
    /* junk text before the reply is a line, the value is the last one */
    { "crate\r", "xx\r\n6 ul/min\r\n00>", 0, false },
};
static const struct op hv_bad_ops[] = {
    READ_FAILS(0, -ETIMEDOUT, "=hpump1: no reply to 'crate' within 100 ms"),
    READ_FAILS(0, -ETIMEDOUT, "address 1 answered: is the address right?"),
    READ_FAILS(0, -ETIMEDOUT, "=hpump1: incomplete reply to 'crate' within 100 ms: "
               "'\\x0d\\x0a1 ul/min\\x0d\\x0a'"),
    READ_FAILS(0, -EBADMSG, "hpump1: garbled reply to 'crate': '\\x0d\\x0a\\x01"),
    READ_FAILS(0, -EBADMSG, "=hpump1: cannot parse the pump's reply '12.5 XX' to 'crate'"),
    READ_FAILS(0, -EBADMSG, NULL),
    READ_FAILS(1, -EBADMSG, NULL),
    READ_OK(0, 4, 0),
    READ_OK(0, 6, 0),
};
static const struct step hv_split_steps[] = {
    { "crate\r", "\r\n8 ul/min\r\n00>", 5, false },            /* inside the text */
    { "crate\r", "\r\n9 ul/min\r\n00<", 13, false },           /* inside the prompt's address */
    { "crate\r", "\r\n7 ul/min\r\n00", 0, false },             /* a prompt that never ends */
};
static const struct op hv_split_ops[] = {
    READ_OK(0, 8, 0),
    READ_OK(0, -9, 0),
    READ_FAILS(0, -ETIMEDOUT, NULL),
};
static const struct step hv_shared_steps[] = {
    { "12:crate\r", "\r\n1 ul/min\r\n12>", 0, false },
    { "crate\r", "\r\n2 ul/min\r\n00<", 0, false },
    { "12:stop\r", "\r\n12:", 0, false },
    { "12:irate 3 ul/min\r", "\r\n12:", 0, false }, { "12:irun\r", "\r\n12>", 0, false },
};
static const struct dev_param hv_pump12[] = { { "address", "12", 1, 1 }, { "syringe.diameter", "4.78 mm", 1, 1 } };
static const struct op hv_shared_ops[] = {
    READ2_OK(0, 1, 0),
    READ_OK(0, -2, 0),
    SAFE2(0, NULL),
    WRITE2(0, 3, 0, NULL),
};
static const struct dev_param hv_bad1[] = { { "address", "100", 1, 1 }, { "syringe.diameter", "14.57 mL", 1, 1 },
                                            { "max_flow", "-5 uL/min", 1, 1 }, { "syringe.volum", "1 mL", 1, 1 },
                                            { "baud", "9600", 1, 1 } };
static const struct config_error_want hv_want1[] = {
    { "syringe.volum", "did you mean 'syringe.volume'?" },
    { "baud", "expected address, syringe.diameter" },
    { "syringe.diameter", "a length" },
    { "address", "0 to 99, found '100'" },
    { "max_flow", "above 0" },
};
static const struct dev_param hv_bad2[] = { { "address", "1", 1, 1 } };
static const struct config_error_want hv_want2[] = { { "", "inside diameter" } };
static const struct dev_param hv_bad3[] = { { "syringe.diameter", "60 mm", 1, 1 }, { "syringe.volume", "0 mL", 1, 1 } };
static const struct config_error_want hv_want3[] = {
    { NULL, "0.1 to 50 mm, found 60 mm" },
    { NULL, "syringe volume must be above 0" },
};
static const struct bad_entry hv_bad[] = { BAD(hv_bad1, hv_want1), BAD(hv_bad2, hv_want2), BAD(hv_bad3, hv_want3) };

/* ------------------------------------------------------------------------ */
/* Reglo ICC                                                                */
/* ------------------------------------------------------------------------ */

static const struct link_config rg_line = { .name = "perist", .baud = 9600, .parity = 'N', .data_bits = 8,
                                            .stop_bits = 1, .timeout_ms = LINK_TIMEOUT_MS };
static const struct dev_param rg_params[] = { { "address", "1", 1, 1 }, { "channel", "1", 1, 1 },
                                              { "max_flow", "1 mL/min", 1, 1 } };
static const struct dev_param rg_params_ch2[] = { { "address", "1", 1, 1 }, { "channel", "2", 1, 1 },
                                                  { "max_flow", "3 mL/min", 1, 1 } };
static const struct dev_param rg_params_ch3[] = { { "address", "1", 1, 1 }, { "channel", "3", 1, 1 },
                                                  { "max_flow", "1 mL/min", 1, 1 } };

static const struct step rg_confirm_steps[] = {
    /* connect: channel addressing at the pump's address, then flow mode, what it is */
    { "1~1\r", "*", 0, false }, { "2xM\r", "L\r\n", 0, false }, { "2M\r", "*", 0, false },
    { "2?\r", "2.000 ml/min\r\n", 0, false }, { "2xD\r", "J\r\n", 0, false }, { "2E\r", "-", 0, false },
    /* write 50 uL/min: already clockwise, so the rate and a start */
    { "2f5000-2\r", "5000E-2\r\n", 0, false }, { "2H\r", "*", 0, false },
    { "2E\r", "+", 0, false }, { "2xD\r", "J\r\n", 0, false }, { "2f\r", "5000E-2\r\n", 0, false },
    /* write -120: counter-clockwise, rate, start */
    { "2K\r", "*", 0, false }, { "2f1200-1\r", "1200E-1\r\n", 0, false }, { "2H\r", "*", 0, false },
    { "2E\r", "+", 0, false }, { "2xD\r", "K\r\n", 0, false }, { "2f\r", "1200E-1\r\n", 0, false },
    /* 0 stops; a stopped channel reads 0 whatever its rate setting */
    { "2I\r", "*", 0, false }, { "2E\r", "-", 0, false },
    /* a stop is always sent, whatever the driver believes */
    { "2I\r", "*", 0, false },
};
static const struct op rg_confirm_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 50, 0, NULL),
    READ_OK(0, 50, 1e-9),
    WRITE(0, -120, 0, NULL),
    READ_OK(0, -120, 1e-9),
    WRITE(0, 0, 0, NULL),
    READ_OK(0, 0, 0),
    SAFE(0, NULL),
    /* Refused without a byte sent: beyond max_flow, beyond the pump's own maximum
     * for the tubing (2 mL/min, learnt at connect), not a number, another channel. */
    WRITE(0, 3500, -ERANGE, "beyond max_flow (3000 uL/min)"),
    WRITE(0, -2500, -ERANGE, "=perist1: -2500 uL/min is above the 2000 uL/min the pump "
          "gives on channel 2 with its tubing; lower max_flow or fit wider tubing"),
    WRITE(0, NAN, -EINVAL, NULL),
    WRITE(1, 5, -EINVAL, NULL),
};
static const struct step rg_reconnect_steps[] = {
    /* already in flow mode, running counter-clockwise: nothing changed */
    { "1~1\r", "*", 0, false }, { "3xM\r", "M\r\n", 0, false }, { "3?\r", "1500E+0 ml/min\r\n", 0, false },
    { "3xD\r", "K\r\n", 0, false }, { "3E\r", "+", 0, false },
    { "3E\r", "+", 0, false }, { "3xD\r", "K\r\n", 0, false }, { "3f\r", "2500E-1\r\n", 0, false },
    /* a new rate the same way round: no rotation command */
    { "3f3000-1\r", "3000E-1\r\n", 0, false }, { "3H\r", "*", 0, false },
};
static const struct op rg_reconnect_ops[] = {
    CONNECT(0, NULL),
    READ_OK(0, -250, 1e-9),
    WRITE(0, -300, 0, NULL),
};
static const struct step rg_cannot_steps[] = {
    { "1~1\r", "*", 0, false }, { "1xM\r", "M\r\n", 0, false }, { "1?\r", "1.000 ml/min\r\n", 0, false },
    { "1xD\r", "J\r\n", 0, false }, { "1E\r", "-", 0, false },
    { "1f5000-2\r", "#", 0, false },
    { "1f5000-2\r", "5000E-2\r\n", 0, false }, { "1H\r", "-", 0, false },
    { "1E\r", "-", 0, false },
    { "1f9000-1\r", "8000E-1\r\n", 0, false },     /* the pump took less than asked */
    { "1f5000-2\r", "5010E-2\r\n", 0, false }, { "1H\r", "*", 0, false },   /* its rounding is fine */
};
static const struct op rg_cannot_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 50, -EREMOTEIO, "=perist1: pump refused '1f5000-2' (#: not executed)"),
    WRITE(0, 50, -EREMOTEIO, "=perist1: pump answered '-' to '1H': the channel cannot run "
          "with its settings (flow rate 0, or above the maximum for its tubing)"),
    READ_OK(0, 0, 0),
    WRITE(0, 900, -EREMOTEIO, "=perist1: pump set 0.8 mL/min on channel 1 when asked for 0.9 mL/min"),
    WRITE(0, 50, 0, NULL),
};
static const struct step rg_refused_steps[] = {
    { "1~1\r", "#", 0, false },
    { "1J\r", "#", 0, false },
    { "1J\r", "*", 0, false }, { "1f5000-2\r", "#", 0, false },
    { "1I\r", "#", 0, false },
};
static const struct op rg_refused_ops[] = {
    CONNECT(-EREMOTEIO, "=perist1: pump refused '1~1' (#: not executed)"),
    WRITE(0, 50, -EREMOTEIO, "=perist1: pump refused '1J' (#: not executed)"),
    /* the rotation was refused, so it is sent again; then the rate is refused */
    WRITE(0, 50, -EREMOTEIO, "=perist1: pump refused '1f5000-2' (#: not executed)"),
    SAFE(-EREMOTEIO, "=perist1: pump refused '1I' (#: not executed)"),
};
static const struct step rg_bad_steps[] = {
    { "1E\r", NULL, 0, false },                                    /* silence */
    { "1E\r", "x", 0, false },                                     /* not a status */
    { "1E\r", "+", 0, false }, { "1xD\r", "J", 0, false },                /* data without its line end */
    { "1E\r", "+", 0, false }, { "1xD\r", "Q\r\n", 0, false },            /* not a rotation */
    { "1E\r", "+", 0, false }, { "1xD\r", "J\r\n", 0, false }, { "1f\r", "12.5XX\r\n", 0, false },
    { "1E\r", "+", 0, false }, { "1xD\r", "J\r\n", 0, false }, { "1f\r", "*", 0, false },   /* status for data */
    { "1E\r", "+", 0, false }, { "1xD\r", "J\r\n", 0, false }, { "1f\r", "12\x07" "4E-3\r\n", 0, false },
    /* an event line before the answer, and stale bytes after it */
    { "1E\r", "^U1\r\n+\r\nstale", 0, false }, { "1xD\r", "J\r\n", 0, false }, { "1f\r", "1000E+0\r\n", 0, false },
};
static const struct op rg_bad_ops[] = {
    READ_FAILS(0, -ETIMEDOUT, "=perist1: no reply to '1E' within 100 ms"),
    READ_FAILS(0, -EBADMSG, "=perist1: garbled reply to '1E': 'x'"),
    READ_FAILS(0, -ETIMEDOUT, "=perist1: incomplete reply to '1xD' within 100 ms: 'J'"),
    READ_FAILS(0, -EBADMSG, "=perist1: expected J or K in reply to '1xD', got 'Q'"),
    READ_FAILS(0, -EBADMSG, "=perist1: cannot parse the rate '12.5XX' in reply to '1f'"),
    READ_FAILS(0, -EBADMSG, "=perist1: expected data in reply to '1f', got '*'"),
    READ_FAILS(0, -EBADMSG, "=perist1: garbled reply to '1f': '12\\x074E-3\\x0d\\x0a'"),
    READ_OK(0, 1000, 1e-9),
};
static const struct step rg_split_steps[] = {
    { "1E\r", "+", 0, false }, { "1xD\r", "K\r\n", 2, false }, { "1f\r", "5000E-2\r\n", 4, false },
    { "1E\r", "+", 0, false }, { "1xD\r", "J\r", 0, false },
};
static const struct op rg_split_ops[] = {
    READ_OK(0, -50, 1e-9),
    READ_FAILS(0, -ETIMEDOUT, NULL),
};
static const struct dev_param rg_bad1[] = { { "address", "9", 1, 1 }, { "chanel", "2", 1, 1 },
                                            { "channel", "5", 1, 1 }, { "max_flow", "0 mL/min", 1, 1 },
                                            { "direction", "up", 1, 1 } };
static const struct config_error_want rg_want1[] = {
    { "chanel", "did you mean 'channel'?" },
    { "address", "1 to 8, found '9'" },
    { "channel", "1 to 4, found '5'" },
    { "max_flow", "above 0" },
    { "direction", "cw or ccw" },
};
static const struct dev_param rg_bad2[] = { { "address", "1", 1, 1 } };
static const struct config_error_want rg_want2[] = {
    { NULL, "'channel: N' (1 to 4)" },
    { NULL, "'max_flow: 1 mL/min'" },
};
static const struct dev_param rg_bad3[] = { { "channel", "1", 1, 1 }, { "max_flow", "1 mL", 1, 1 } };
static const struct bad_entry rg_bad[] = {
    BAD(rg_bad1, rg_want1), BAD(rg_bad2, rg_want2), BAD_FIRST(rg_bad3, "max_flow", NULL),
};

/* ------------------------------------------------------------------------ */
/* Hamilton MVP                                                             */
/* ------------------------------------------------------------------------ */

static const struct link_config hm_line = { .name = "valves", .baud = 9600, .parity = 'O', .data_bits = 7,
                                            .stop_bits = 1, .timeout_ms = LINK_TIMEOUT_MS };
/* The usual valve: a, 6 ports, shortest way, move_timeout 0.5 s. */
static const struct dev_param hm_params[] = { { "address", "a", 1, 1 }, { "ports", "6", 1, 1 },
                                              { "move_timeout", "0.5 s", 1, 1 } };
/* Replies as valve a sends them: the echo, then ACK and data, or NAK. */
#define ACK(cmd, data) cmd "\r\x06" data "\r"
#define NAK(cmd) cmd "\r\x15\r"
#define IDLE { "aF\r", ACK("aF", "Y"), 0, false }
#define BUSY { "aF\r", ACK("aF", "*"), 0, false }
#define NO_ERRORS { "aE2\r", ACK("aE2", "P@PP"), 0, false }
#define AT(port) { "aLQP\r", ACK("aLQP", port), 0, false }

static const struct step hm_confirm_steps[] = {
    /* connect: idle, not initialised: LXR, wait for it, check, type, where */
    IDLE, { "aE2\r", ACK("aE2", "PAPP"), 0, false },
    { "aLXR\r", ACK("aLXR", ""), 0, false }, BUSY, BUSY, IDLE, NO_ERRORS,
    { "aLQT\r", ACK("aLQT", "3"), 0, false }, AT("1"),
    /* write 3: idle, no error, at 1: clockwise is shorter */
    IDLE, NO_ERRORS, AT("1"), { "aLP03R\r", ACK("aLP03R", ""), 0, false },
    BUSY, IDLE, NO_ERRORS, AT("3"),
    /* read */
    IDLE, NO_ERRORS, AT("3"),
    /* write 3 again: already there, no move */
    IDLE, NO_ERRORS, AT("3"),
    /* write 1 from 3: counter-clockwise is shorter */
    IDLE, NO_ERRORS, AT("3"), { "aLP11R\r", ACK("aLP11R", ""), 0, false },
    BUSY, BUSY, BUSY, IDLE, NO_ERRORS, AT("1"),
    /* write 4 from 1: a tie goes clockwise */
    IDLE, NO_ERRORS, AT("1"), { "aLP04R\r", ACK("aLP04R", ""), 0, false },
    IDLE, NO_ERRORS, AT("4"),
};
static const struct op hm_confirm_ops[] = {
    CONNECT(0, NULL),
    WRITE(0, 3, 0, NULL),
    READ_OK(0, 3, 0),
    WRITE(0, 3, 0, NULL),
    WRITE(0, 1, 0, NULL),
    WRITE(0, 4, 0, NULL),
};
static const struct step hm_reconnect_steps[] = {
    /* initialised already: no LXR */
    IDLE, NO_ERRORS, { "aLQT\r", ACK("aLQT", "3"), 0, false }, AT("4"),
    /* still moving when the line came back: wait, then the same */
    BUSY, BUSY, IDLE, NO_ERRORS, { "aLQT\r", NAK("aLQT"), 0, false }, AT("5"),
    /* an overload is no reason to move it either */
    IDLE, { "aE2\r", ACK("aE2", "PDPP"), 0, false }, { "aLQT\r", ACK("aLQT", "3"), 0, false },
    AT("2"),
};
static const struct op hm_reconnect_ops[] = {
    CONNECT(0, NULL),
    CONNECT(0, NULL) /* a valve that does not say its type */,
    CONNECT(0, NULL),
};
static const struct step hm_cannot_steps[] = {
    BUSY,
    { "aF\r", ACK("aF", "N"), 0, false },
    /* not initialised (power cut with the line up): no position */
    IDLE, { "aE2\r", ACK("aE2", "PAPP"), 0, false },
    IDLE, { "aE2\r", ACK("aE2", "PDPP"), 0, false },
};
static const struct op hm_cannot_ops[] = {
    READ_FAILS(0, -EBUSY, "=selector1: the valve is moving ('*' to F): no position until it stops"),
    READ_FAILS(0, -EBUSY, NULL),
    READ_FAILS(0, -EREMOTEIO, "selector1: valve not initialised (E2)"),
    READ_FAILS(0, -EREMOTEIO, "overload"),
};
static const struct step hm_refused_steps[] = {
    /* NAK, and E2 names no error */
    IDLE, NO_ERRORS, AT("1"), { "aLP02R\r", NAK("aLP02R"), 0, false }, NO_ERRORS,
    /* NAK, and E2 says why */
    IDLE, NO_ERRORS, AT("1"), { "aLP02R\r", NAK("aLP02R"), 0, false },
    { "aE2\r", ACK("aE2", "PDPP"), 0, false },
    /* the move ends at another port */
    IDLE, NO_ERRORS, AT("1"), { "aLP02R\r", ACK("aLP02R", ""), 0, false }, IDLE, NO_ERRORS,
    AT("3"),
    /* the move ends in an overload */
    IDLE, NO_ERRORS, AT("1"), { "aLP02R\r", ACK("aLP02R", ""), 0, false }, IDLE,
    { "aE2\r", ACK("aE2", "PDPP"), 0, false },
    /* initialisation fails */
    IDLE, { "aE2\r", ACK("aE2", "PAPP"), 0, false }, { "aLXR\r", ACK("aLXR", ""), 0, false },
    IDLE, { "aE2\r", ACK("aE2", "PCPP"), 0, false },
    /* a valve with other ports than the rig says */
    IDLE, NO_ERRORS, { "aLQT\r", ACK("aLQT", "2"), 0, false },
    /* a valve that never finishes its move (move_timeout 0.5 s) */
    IDLE, NO_ERRORS, AT("1"), { "aLP02R\r", ACK("aLP02R", ""), 0, false },
    { "aF\r", ACK("aF", "*"), 0, true },
};
static const struct op hm_refused_ops[] = {
    WRITE(0, 2, -EREMOTEIO, "=selector1: the valve refused 'LP02R' (NAK)"),
    WRITE(0, 2, -EREMOTEIO, "selector1: the valve refused 'LP02R' (NAK): valve overload"),
    WRITE(0, 2, -EREMOTEIO, "=selector1: the valve stopped at port 3 after 'LP02R', not at port 2"),
    { .kind = OP_WRITE, .value = 2, .rc = -EREMOTEIO, .err = "overload (E2)", .err2 = "after LP02R" },
    CONNECT(-EREMOTEIO, "initialisation error (E2)"),
    CONNECT(-EREMOTEIO, "=selector1: the valve is a 8-port valve (LQT 2), the rig says "
            "'ports: 6': fix the rig entry"),
    WRITE(0, 2, -EREMOTEIO, "=selector1: the valve still reports busy ('*' to F) 0.5 s after "
          "'LP02R' (move_timeout): is the rotor blocked?"),
};
static const struct op hm_before_ops[] = {
    WRITE(0, 2.5, -EINVAL, "=selector1: a valve position is a whole port number, found 2.5"),
    WRITE(0, 0, -ERANGE, "=selector1: port 0 does not exist: the valve has ports 1 to 6"),
    WRITE(0, 7, -ERANGE, NULL),
    WRITE(0, NAN, -EINVAL, NULL),
    WRITE(0, INFINITY, -EINVAL, NULL),
    WRITE(1, 2, -EINVAL, NULL),
    READ_FAILS(1, -EINVAL, NULL),
};
static const struct step hm_bad_steps[] = {
    { "aF\r", NULL, 0, false },                             /* silence */
    { "aF\r", ACK("bF", "Y"), 0, false },                   /* another valve */
    { "aF\r", "aF\r", 0, false },                           /* the echo, no answer */
    { "aF\r", "aF\r\x06Y", 0, false },                      /* no CR */
    { "aF\r", ACK("bF", "*") ACK("aF", "Y"), 0, false },    /* theirs, then ours */
    { "aE2\r", ACK("aLQP", "5") ACK("aE2", "P@PP"), 0, false },  /* our stale one first */
    { "aLQP\r", ACK("aLQP", "4"), 6, false },               /* split in two writes */
    { "aF\r", "\x01\x02junk\r", 0, false },                 /* garbage */
    { "aF\r", ACK("aF", "Q"), 0, false },                   /* an unknown answer */
    IDLE, { "aE2\r", ACK("aE2", "XY"), 0, false },          /* a short E2 */
    IDLE, NO_ERRORS, AT("9"),                               /* a port the valve lacks */
    IDLE, NO_ERRORS, AT("x"),
    { "aF\r", NAK("aF"), 0, false },                        /* a refused query */
};
static const struct op hm_bad_ops[] = {
    READ_FAILS(0, -ETIMEDOUT, "=selector1: no reply to 'F' within 100 ms"),
    READ_FAILS(0, -ETIMEDOUT, "address 'b' answered"),
    READ_FAILS(0, -ETIMEDOUT, "=selector1: incomplete reply to 'F' within 100 ms: 'aF\\x0d'"),
    READ_FAILS(0, -ETIMEDOUT, "=selector1: incomplete reply to 'F' within 100 ms: 'aF\\x0d\\x06Y'"),
    READ_OK(0, 4, 0),
    READ_FAILS(0, -EBADMSG, "=selector1: garbled reply to 'F': '\\x01\\x02junk\\x0d'"),
    READ_FAILS(0, -EBADMSG, "cannot parse the answer 'Q' to 'F'"),
    READ_FAILS(0, -EBADMSG, "cannot parse the answer 'XY' to 'E2'"),
    READ_FAILS(0, -EBADMSG, "=selector1: the valve reports port '9', not one of 1..6"),
    READ_FAILS(0, -EBADMSG, NULL),
    READ_FAILS(0, -EREMOTEIO, "=selector1: the valve refused 'F' (NAK)"),
};
static const struct step hm_shared_steps[] = {
    { "bF\r", ACK("bF", "Y"), 0, false }, { "bE2\r", ACK("bE2", "P@PP"), 0, false },
    { "bLQP\r", ACK("bLQP", "8"), 0, false },
    IDLE, NO_ERRORS, AT("2"),
};
static const struct dev_param hm_valve_b[] = { { "address", "b", 1, 1 }, { "ports", "8", 1, 1 } };
static const struct op hm_shared_ops[] = {
    READ2_OK(0, 8, 0),
    READ_OK(0, 2, 0),
};
static const struct dev_param hm_bad1[] = { { "address", "A", 1, 1 }, { "ports", "20", 1, 1 },
                                            { "move_timeout", "0.1 s", 1, 1 }, { "direction", "left", 1, 1 },
                                            { "port", "6", 1, 1 } };
static const struct config_error_want hm_want1[] = {
    { "port", "did you mean 'ports'?" },
    { "address", "one letter from a to p" },
    { "ports", "from 2 to 16, found '20'" },
    { "move_timeout", "from 0.5 s to 60 s" },
    { "direction", "shortest, clockwise or counterclockwise" },
};
static const struct dev_param hm_bad2[] = { { "address", "a", 1, 1 } };
static const struct config_error_want hm_want2[] = { { "", "'ports: 6'" } };
static const struct dev_param hm_bad3[] = { { "ports", "6", 1, 1 }, { "adress", "b", 1, 1 }, { "speed", "fast", 1, 1 } };
static const struct config_error_want hm_want3[] = {
    { NULL, "did you mean 'address'?" },
    { NULL, "expected address, ports, move_timeout, direction" },
};
static const struct bad_entry hm_bad[] = { BAD(hm_bad1, hm_want1), BAD(hm_bad2, hm_want2), BAD(hm_bad3, hm_want3) };

/* ------------------------------------------------------------------------ */
/* The table                                                                */
/* ------------------------------------------------------------------------ */

static const struct contract_row rows[] = {
    {
        .driver = "newera", .name = "pump1", .line = &ne_line, .params = ne_params, .n_params = N(ne_params),
        .n_channels = 2, .setpoint = 1,
        .confirm = EXCHANGE(ne_confirm_steps, ne_confirm_ops),
        .reconnect = EXCHANGE(ne_reconnect_steps, ne_reconnect_ops),
        .cannot = EXCHANGE(ne_cannot_steps, ne_cannot_ops),
        .refused = EXCHANGE(ne_refused_steps, ne_refused_ops),
        .bad_replies = EXCHANGE(ne_bad_steps, ne_bad_ops),
        .split = EXCHANGE(ne_split_steps, ne_split_ops),
        .shared = SHARED(ne_shared_steps, ne_shared_ops, "pump1", ne_pump12),
        .bad = ne_bad, .n_bad = N(ne_bad),
    },
    {
        .driver = "harvard", .name = "hpump1", .line = &hv_line, .params = hv_params, .n_params = N(hv_params),
        .n_channels = 2, .setpoint = 1,
        .confirm = EXCHANGE(hv_confirm_steps, hv_confirm_ops),
        .reconnect = EXCHANGE(hv_reconnect_steps, hv_reconnect_ops),
        .cannot = EXCHANGE(hv_cannot_steps, hv_cannot_ops),
        .refused = EXCHANGE(hv_refused_steps, hv_refused_ops),
        .bad_replies = EXCHANGE(hv_bad_steps, hv_bad_ops),
        .split = EXCHANGE(hv_split_steps, hv_split_ops),
        .shared = SHARED(hv_shared_steps, hv_shared_ops, "hpump1", hv_pump12),
        .bad = hv_bad, .n_bad = N(hv_bad),
    },
    {
        .driver = "reglo", .name = "perist1", .line = &rg_line, .params = rg_params, .n_params = N(rg_params),
        .n_channels = 1, .setpoint = 50,
        .confirm = EXCHANGE_P(rg_confirm_steps, rg_confirm_ops, rg_params_ch2),
        .reconnect = EXCHANGE_P(rg_reconnect_steps, rg_reconnect_ops, rg_params_ch3),
        .cannot = EXCHANGE(rg_cannot_steps, rg_cannot_ops),
        .refused = EXCHANGE(rg_refused_steps, rg_refused_ops),
        .bad_replies = EXCHANGE(rg_bad_steps, rg_bad_ops),
        .split = EXCHANGE(rg_split_steps, rg_split_ops),
        .bad = rg_bad, .n_bad = N(rg_bad),
    },
    {
        .driver = "hamilton", .name = "selector1", .line = &hm_line, .params = hm_params, .n_params = N(hm_params),
        .n_channels = 1, .setpoint = 2,
        .confirm = EXCHANGE(hm_confirm_steps, hm_confirm_ops),
        .reconnect = EXCHANGE(hm_reconnect_steps, hm_reconnect_ops),
        .cannot = EXCHANGE(hm_cannot_steps, hm_cannot_ops),
        .refused = { .steps = hm_refused_steps, .n_steps = N(hm_refused_steps), .ops = hm_refused_ops,
                     .n_ops = N(hm_refused_ops), .min_repeats = 3 },
        .before_sending = { .ops = hm_before_ops, .n_ops = N(hm_before_ops) },
        .bad_replies = EXCHANGE(hm_bad_steps, hm_bad_ops),
        .shared = SHARED(hm_shared_steps, hm_shared_ops, "selector1", hm_valve_b),
        .bad = hm_bad, .n_bad = N(hm_bad),
    },
};

/* ------------------------------------------------------------------------ */
/* The runner                                                               */
/* ------------------------------------------------------------------------ */

static const char *const op_names[] = { "connect", "read", "write", "safe_state" };

/* Check link.err against want ("=TEXT": all of it; else a part of it). */
static void expect_err(const struct contract_row *row, const char *what, size_t i, const char *err,
                       const char *want)
{
    if (want == NULL)
        return;
    bool ok = want[0] == '=' ? strcmp(err, want + 1) == 0 : strstr(err, want) != NULL;
    if (!ok)
        fail_msg("%s, %s, op %zu: message '%s', want %s'%s'", row->driver, what, i, err,
                 want[0] == '=' ? "" : "a part ", want[0] == '=' ? want + 1 : want);
}

/* Play one exchange of a row: open its device on a pty, start the script, make
 * each call and check it, then check the script was played to the end. */
static void play(const struct contract_row *row, const char *what, const struct exchange *x)
{
    if (x->ops == NULL)
        return;         /* the step has nothing particular to this driver */
    print_message("  %s: %s\n", row->driver, what);
    struct pty_rig r;
    pty_rig_open(&r, row->line, row->driver, row->name, x->params ? x->params : row->params,
                 x->params ? x->n_params : row->n_params);
    void *dev2 = x->name2 ? pty_rig_add(&r, x->name2, x->params2, x->n_params2) : NULL;
    script_start(&r.script, r.pty.master, x->steps, x->n_steps);
    for (size_t i = 0; i < x->n_ops; i++) {
        const struct op *o = &x->ops[i];
        void *dev = o->dev ? dev2 : r.dev;
        double v = UNTOUCHED;
        int rc = 0;
        switch (o->kind) {
        case OP_CONNECT: rc = r.drv->connect(dev, &r.link); break;
        case OP_READ: rc = r.drv->read(dev, &r.link, o->ch, &v); break;
        case OP_WRITE: rc = r.drv->write(dev, &r.link, o->ch, o->value); break;
        case OP_SAFE: rc = r.drv->safe_state(dev, &r.link); break;
        }
        if (rc != o->rc)
            fail_msg("%s, %s, op %zu (%s of channel %zu): rc %d, want %d; message '%s'", row->driver, what,
                     i, op_names[o->kind], o->ch, rc, o->rc, r.link.err);
        expect_err(row, what, i, r.link.err, o->err);
        expect_err(row, what, i, r.link.err, o->err2);
        if (o->kind == OP_READ && rc == 0 && !(fabs(v - o->value) <= o->tol))
            fail_msg("%s, %s, op %zu: read %.17g, want %.17g", row->driver, what, i, v, o->value);
        if (o->kind == OP_READ && rc != 0 && v != UNTOUCHED)
            fail_msg("%s, %s, op %zu: a read that failed gave %.17g", row->driver, what, i, v);
    }
    script_finish(&r.script);
    if (atomic_load(&r.script.repeats) < x->min_repeats)
        fail_msg("%s, %s: %d repeated answers, want at least %d", row->driver, what,
                 atomic_load(&r.script.repeats), x->min_repeats);
    if (dev2 != NULL)
        r.drv->close(dev2);
    pty_rig_close(&r);
}

/* Play the exchange at offset off of struct contract_row for every row. */
static void play_all(size_t off, const char *what)
{
    for (size_t i = 0; i < N(rows); i++)
        play(&rows[i], what, (const struct exchange *)((const char *)&rows[i] + off));
}

#define STEP(field) offsetof(struct contract_row, field)

/* ------------------------------------------------------------------------ */
/* The steps                                                                */
/* ------------------------------------------------------------------------ */

static void test_connect_write_read_back_and_safe_state_send_exact_bytes(void **state)
{
    (void)state;
    play_all(STEP(confirm), "connect, write, read back, safe state");
}

static void test_a_reconnect_leaves_a_running_device_as_it_is(void **state)
{
    (void)state;
    play_all(STEP(reconnect), "reconnect to a running device");
}

static void test_a_device_that_cannot_do_it_is_an_error_never_a_value(void **state)
{
    (void)state;
    play_all(STEP(cannot), "a device that cannot");
}

static void test_refusals_are_remote_errors_in_the_devices_words(void **state)
{
    (void)state;
    play_all(STEP(refused), "refusals");
}

/* Not a number, or a channel the device does not have: refused for every
 * driver with no byte sent (the script is empty), then what the row adds. */
static void test_bad_setpoints_are_refused_before_anything_is_sent(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(rows); i++) {
        const struct contract_row *row = &rows[i];
        const struct op generic[] = {
            WRITE(0, NAN, -EINVAL, NULL),
            WRITE(row->n_channels, row->setpoint, -EINVAL, NULL),
            READ_FAILS(row->n_channels, -EINVAL, NULL),
        };
        const struct exchange x = { .ops = generic, .n_ops = N(generic) };
        play(row, "bad setpoints, before anything is sent", &x);
        play(row, "bad setpoints of its own, before anything is sent", &row->before_sending);
    }
}

static void test_bad_replies_time_out_or_are_garbled_never_a_number(void **state)
{
    (void)state;
    play_all(STEP(bad_replies), "bad replies");
}

static void test_a_reply_split_across_reads_is_reassembled(void **state)
{
    (void)state;
    play_all(STEP(split), "a split reply");
}

static void test_devices_share_one_line_by_address(void **state)
{
    (void)state;
    play_all(STEP(shared), "two devices on one line");
}

/* A closed line: every call is -ENOTCONN with the value untouched, and the
 * line can be opened again (the exclusive lock was released). */
static void test_a_closed_line_is_not_connected(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(rows); i++) {
        const struct contract_row *row = &rows[i];
        print_message("  %s: a closed line\n", row->driver);
        struct pty_rig r;
        pty_rig_open(&r, row->line, row->driver, row->name, row->params, row->n_params);
        pty_rig_expect_closed_line(&r);
        int rc = r.drv->write(r.dev, &r.link, 0, row->setpoint);
        if (rc != -ENOTCONN)
            fail_msg("%s: a write on a closed line: rc %d, want -ENOTCONN", row->driver, rc);
        rc = link_open(&r.link, &r.lc);
        if (rc != 0)
            fail_msg("%s: reopen: %s", row->driver, r.link.err);
        pty_rig_close(&r);
    }
}

/* Every error of a bad rig entry is reported at its key, and no device is made. */
static void test_bad_rig_entries_are_all_reported(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(rows); i++) {
        const struct contract_row *row = &rows[i];
        for (size_t k = 0; k < row->n_bad; k++) {
            const struct bad_entry *b = &row->bad[k];
            print_message("  %s: bad rig entry %zu\n", row->driver, k + 1);
            struct config_errors e;
            struct driver_channel ch[DRIVER_MAX_CHANNELS];
            size_t n;
            void *st = NULL;
            int rc = pty_rig_open_device(row->driver, row->name, b->params, b->n, &e, &st, ch, &n);
            if (rc != -EINVAL)
                fail_msg("%s: bad rig entry %zu: rc %d, want -EINVAL", row->driver, k + 1, rc);
            assert_null(st);
            if (b->want != NULL) {
                config_errors_expect(&e, b->n_want, b->want);
                continue;
            }
            assert_true(e.n >= 1);
            if (b->first_key != NULL)
                assert_string_equal(e.key[0], b->first_key);
            if (b->first_text != NULL)
                assert_non_null(strstr(e.text[0], b->first_text));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_write_read_back_and_safe_state_send_exact_bytes),
        cmocka_unit_test(test_a_reconnect_leaves_a_running_device_as_it_is),
        cmocka_unit_test(test_a_device_that_cannot_do_it_is_an_error_never_a_value),
        cmocka_unit_test(test_refusals_are_remote_errors_in_the_devices_words),
        cmocka_unit_test(test_bad_setpoints_are_refused_before_anything_is_sent),
        cmocka_unit_test(test_bad_replies_time_out_or_are_garbled_never_a_number),
        cmocka_unit_test(test_a_reply_split_across_reads_is_reassembled),
        cmocka_unit_test(test_devices_share_one_line_by_address),
        cmocka_unit_test(test_a_closed_line_is_not_connected),
        cmocka_unit_test(test_bad_rig_entries_are_all_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
