/* Sample messages shared by the protocol tests: one of each type, every field set to a
 * distinct value so that a swapped or dropped field shows in a round trip. */
#ifndef BELLOWS_TEST_SAMPLES_H
#define BELLOWS_TEST_SAMPLES_H

#include "protocol/bellows_protocol.h"

#include <string.h>

static inline struct bp_mem sample_mem(void)
{
    return (struct bp_mem){
        .mem_total_kb = 481296,
        .mem_free_kb = 12345,
        .mem_available_kb = 23456,
        .committed_as_kb = 600000,
        .swap_total_kb = 1048572,
        .swap_free_kb = 1000000,
        .pswpin = 17,
        .pswpout = 4242,
        .pgmajfault = 99,
        .psi_some_avg10 = 12.34,
        .psi_full_avg10 = 0.5,
        .psi_some_total_us = 123456789,
        .psi_full_total_us = 2345678,
    };
}

static inline struct bp_msg sample_hello(void)
{
    struct bp_msg m = {.type = BP_MSG_HELLO};
    m.u.hello.protocol_version = BP_PROTOCOL_VERSION;
    strcpy(m.u.hello.agent, "bellows-agent 0.1.0");
    strcpy(m.u.hello.boot_id, "6f1c2a9e-1b7d-4c55-9d1e-0123456789ab");
    m.u.hello.sources = (1u << BP_SOURCE_VMPRESSURE) | (1u << BP_SOURCE_PSI);
    m.u.hello.caps = BP_CAP_REPORT | BP_CAP_SETTINGS;
    return m;
}

static inline struct bp_msg sample_welcome(void)
{
    struct bp_msg m = {.type = BP_MSG_WELCOME};
    m.u.welcome.protocol_version = BP_PROTOCOL_VERSION;
    m.u.welcome.report_interval_ms = 5000;
    m.u.welcome.levels = (1u << BP_LEVEL_MEDIUM) | (1u << BP_LEVEL_CRITICAL);
    return m;
}

static inline struct bp_msg sample_pressure(void)
{
    struct bp_msg m = {.type = BP_MSG_PRESSURE};
    m.u.pressure.seq = 7;
    m.u.pressure.mono_ns = 3500000000ull;
    m.u.pressure.level = BP_LEVEL_CRITICAL;
    m.u.pressure.source = BP_SOURCE_PSI;
    m.u.pressure.mem = sample_mem();
    return m;
}

static inline struct bp_msg sample_report(void)
{
    struct bp_msg m = {.type = BP_MSG_REPORT};
    m.u.report.seq = 8;
    m.u.report.mono_ns = 4500000001ull;
    m.u.report.level = BP_LEVEL_NONE;
    m.u.report.mem = sample_mem();
    return m;
}

#endif
