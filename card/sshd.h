/* SPDX-License-Identifier: MIT */
/*
 * The card's ssh server: dropbear from the image, started by the card OS
 * when the host's overlay gave the card its host key, and restarted when it
 * exits (docs/architecture.md, "ssh into the card").
 */
#ifndef MIC_CARD_SSHD_H
#define MIC_CARD_SSHD_H

#include "card/os.h"

/* Where the host's overlay puts the card's host key. */
#define COS_SSHD_HOSTKEY "/etc/dropbear/dropbear_ed25519_host_key"

/* Starts dropbear if the image has it and the overlay gave a host key. */
void cos_sshd_start(struct cos *c);
/* Forgets the server (its process is gone with the card's others). */
void cos_sshd_stop(struct cos *c);

#endif
