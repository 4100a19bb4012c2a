/*
 * How perfusectl shows the daemon's replies to people (see
 * controller/daemon/CONTROL.md for the replies): the status, a watch, events,
 * devices, and the overrides a resume settled. Writes to stdout.
 */
#ifndef PERFUSE_STATUS_VIEW_H
#define PERFUSE_STATUS_VIEW_H

#include <stdbool.h>

#include <jansson.h>

/* Print a status: state, run, step with progress bars and ETA, prompt,
 * alarms, overrides, every channel. */
void status_view_print(json_t *st);
/* Print a result: as indented JSON if json, else as a status. */
void status_view_result(bool json, json_t *res);
/* After resume: which overrides went back to the protocol's values, which stayed. */
void status_view_overrides_settled(json_t *res);
/* Print one event as a line. */
void status_view_event(json_t *e);
/* Print a devices result: buses, devices, their health and channels. */
void status_view_devices(json_t *res);
/* Print a history result: per channel its kind, unit, last value, and the
 * min and max over the window. */
void status_view_history(json_t *res);
/* One line of a watch for a non-terminal: time, state, step, progress, values, alarms. */
void status_view_watch_line(json_t *st);
/* Redraw a terminal with the status and, under it, the recent events (an array). */
void status_view_watch_screen(json_t *st, json_t *recent);

#endif
