/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* What the pamspy imitations read from libpam and send to user space. */
#ifndef PAM_HANDLE_H
#define PAM_HANDLE_H

#define CRED_LEN 80

/* The leading fields of Linux-PAM's struct pam_handle (user-space memory). */
struct pam_handle {
	char *authtok;
	unsigned caller_is;
	void *pam_conversation;
	char *oldauthtok;
	char *prompt;
	char *service_name;
	char *user;
};

struct cred_event {
	u32 pid;
	char comm[TASK_COMM_LEN];
	u32 caller_is;
	char username[CRED_LEN];
	char password[CRED_LEN];
};

#endif /* PAM_HANDLE_H */
