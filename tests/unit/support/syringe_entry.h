/*
 * What every syringe pump driver promises the rig: a writable flow channel
 * and a read-only dispensed volume, sized from the syringe entry. The syringe
 * pump drivers' tests share this check so that the drivers cannot drift
 * apart in what a rig file gets from them.
 */
#ifndef PERFUSE_TEST_SYRINGE_ENTRY_H
#define PERFUSE_TEST_SYRINGE_ENTRY_H

/* Open a pump of driver from a full entry and from a diameter alone, checking both channels each time. */
void expect_syringe_pump_channels(const char *driver);

#endif
