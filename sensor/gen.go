package sensor

// The kernel programs and their Go bindings; `make generate` reruns this.
// -type emits Go types for the records shared with bpf/include/sentry.h.
//go:generate go tool bpf2go -cc clang-19 -target amd64 -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu" -type sentry_header -type sentry_chunk -type sentry_verdict_rec -type sentry_exit -type sentry_token_rec -type sentry_map_create -type sentry_config -type sentry_loss -type sentry_record_kind -type sentry_verdict -type sentry_action -type sentry_mode -type sentry_on_error -type sentry_lock -type sentry_kattr -type sentry_prefault_ctx -type sentry_tamper -type sentry_obj -type sentry_own_key -type sentry_attach -type sentry_attach_exit -type sentry_attach_key -type sentry_attach_cfg -type sentry_attach_op -type sentry_attach_key_kind -type sentry_attach_record_kind -type sentry_attach_from -type group_key -type group_acc -type sentry_prog_array_rec -type group_calib -type sentry_ioctl_gate -type sentry_perf_opened -type sentry_perf_opened_state sentry ../bpf/sensor.bpf.c

// The same programs for kernels without bpf_loop (before 5.17): bounded
// loops calling global functions (-DSENTRY_NO_LOOP); chosen at run time.
//go:generate go tool bpf2go -cc clang-19 -target amd64 -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu -DSENTRY_NO_LOOP" sentryLegacy ../bpf/sensor.bpf.c
