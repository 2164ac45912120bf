/* SPDX-License-Identifier: MIT */
/* The MIC virtual bus: matching, probe/remove order, interrupts, and the DMA
 * driver bound through it on both sides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <cmocka.h>

#include "bus/mbus.h"
#include "dma_fixture.h"

/* Records "+name" on probe and "-name" on remove. */
struct journal {
	char log[512];
	int fail_probe_of; /* device id whose probe fails, or 0 */
};

static struct journal *journal_of(struct mbus_driver *d)
{
	return d->data;
}

static void note(struct journal *j, char op, const char *what)
{
	size_t n = strlen(j->log);
	snprintf(j->log + n, sizeof(j->log) - n, "%c%s ", op, what);
}

static int rec_probe(struct mbus_device *dev)
{
	struct journal *j = journal_of(dev->driver);
	if ((int)dev->id == j->fail_probe_of)
		return -EIO;
	note(j, '+', dev->name);
	dev->priv = j;
	return 0;
}

static void rec_remove(struct mbus_device *dev)
{
	note(dev->priv, '-', dev->name);
}

static const uint32_t dma_only[] = { MBUS_DEV_DMA, MBUS_DEV_ANY };
static const uint32_t vop_only[] = { MBUS_DEV_VOP, MBUS_DEV_ANY };

static void probe_and_remove_order(void **state)
{
	struct fx *f = *state;
	struct journal j = { .log = "" };
	struct mbus bus;
	assert_int_equal(mbus_init(&bus, "host"), 0);
	struct mbus_device d[3];
	mbus_device_init(&d[0], MBUS_DEV_DMA, "dma0", f->h);
	mbus_device_init(&d[1], MBUS_DEV_VOP, "vop0", f->h);
	mbus_device_init(&d[2], MBUS_DEV_DMA, "dma1", f->h);
	struct mbus_driver a = { .name = "a", .id_table = dma_only, .probe = rec_probe,
				 .remove = rec_remove, .data = &j };
	struct mbus_driver v = { .name = "v", .id_table = vop_only, .probe = rec_probe,
				 .remove = rec_remove, .data = &j };
	/* Devices before the driver: probed when the driver arrives, in order. */
	assert_int_equal(mbus_device_register(&bus, &d[0]), 0);
	assert_int_equal(mbus_device_register(&bus, &d[1]), 0);
	assert_int_equal(mbus_device_register(&bus, &d[0]), -EEXIST);
	assert_string_equal(j.log, "");
	assert_int_equal(mbus_driver_register(&bus, &a), 0);
	assert_string_equal(j.log, "+dma0 ");
	/* Device after the driver: probed at once. */
	assert_int_equal(mbus_device_register(&bus, &d[2]), 0);
	assert_int_equal(mbus_driver_register(&bus, &v), 0);
	assert_string_equal(j.log, "+dma0 +dma1 +vop0 ");
	assert_ptr_equal(d[1].driver, &v);
	/* Driver removal: its devices, latest first. */
	mbus_driver_unregister(&a);
	assert_string_equal(j.log, "+dma0 +dma1 +vop0 -dma1 -dma0 ");
	assert_null(d[0].driver);
	assert_int_equal(mbus_driver_register(&bus, &a), 0);
	/* Device removal: just that device. */
	mbus_device_unregister(&d[0]);
	assert_string_equal(j.log, "+dma0 +dma1 +vop0 -dma1 -dma0 +dma0 +dma1 -dma0 ");
	j.log[0] = 0;
	/* Teardown: everything, reverse probe order. */
	mbus_destroy(&bus);
	assert_string_equal(j.log, "-dma1 -vop0 ");
}

static void failed_probe_leaves_device_unbound(void **state)
{
	struct fx *f = *state;
	struct journal j = { .log = "", .fail_probe_of = MBUS_DEV_DMA };
	struct mbus bus;
	mbus_init(&bus, "card");
	struct mbus_device d;
	mbus_device_init(&d, MBUS_DEV_DMA, "dma", &f->c);
	struct mbus_driver a = { .name = "a", .id_table = dma_only, .probe = rec_probe,
				 .remove = rec_remove, .data = &j };
	mbus_driver_register(&bus, &a);
	mbus_device_register(&bus, &d);
	assert_null(d.driver);
	assert_string_equal(j.log, "");
	mbus_destroy(&bus);
	assert_string_equal(j.log, "");
}

static void interrupts_through_the_bus(void **state)
{
	struct fx *f = *state;
	struct mbus bus;
	mbus_init(&bus, "card");
	struct mbus_device d;
	mbus_device_init(&d, MBUS_DEV_VOP, "vop", &f->c);
	assert_int_equal(mbus_device_register(&bus, &d), 0);
	/* An fd to poll. */
	int fd = mbus_request_irq(&d, 3);
	assert_true(fd >= 0);
	assert_int_equal(mbus_request_irq(&d, 3), -EBUSY);
	assert_int_equal(mbus_request_irq(&d, MIC_NUM_IRQ_LINES), -EINVAL);
	mic_doorbell_ring(f->h, 3);
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 1000), 1);
	assert_int_equal(mbus_ack_irq(&d, 3), 1);
	mbus_free_irq(&d, 3);
	assert_int_equal(mbus_request_irq(&d, 3), fd);
	/* Left claimed on purpose: removal must free the line itself. */
	struct mbus_driver drv = { .name = "v", .id_table = vop_only };
	mbus_driver_register(&bus, &drv);
	mbus_destroy(&bus);
	assert_int_equal(d.irq_claimed, 0);
}

static void dma_driver_on_the_bus(void **state)
{
	struct fx *f = *state;
	struct mbus hbus, cbus;
	mbus_init(&hbus, "host");
	mbus_init(&cbus, "card");
	struct mbus_driver hdrv, cdrv;
	mic_dma_driver_init(&hdrv);
	mic_dma_driver_init(&cdrv);
	struct mbus_device hdev, cdev;
	mbus_device_init(&hdev, MBUS_DEV_DMA, "dma-host", f->h);
	mbus_device_init(&cdev, MBUS_DEV_DMA, "dma-card", &f->c);
	struct mic_dma_chan *c;
	assert_int_equal(mic_dma_request_chan(&hdev, 0, 0x100000, f->card + 0x100000, 8, &c),
			 -ENODEV);
	mbus_driver_register(&hbus, &hdrv);
	mbus_device_register(&hbus, &hdev);
	mbus_device_register(&cbus, &cdev);
	mbus_driver_register(&cbus, &cdrv);
	struct mic_dma_chan *hc, *cc;
	assert_int_equal(mic_dma_request_chan(&hdev, 0, 0x100000, f->card + 0x100000, 8, &hc), 0);
	assert_int_equal(mic_dma_request_chan(&hdev, 0, 0x110000, f->card + 0x110000, 8, &c),
			 -EBUSY);
	assert_int_equal(mic_dma_request_chan(&hdev, 4, 0x110000, f->card + 0x110000, 8, &c),
			 -EPERM);
	assert_int_equal(mic_dma_request_chan(&cdev, 3, 0x110000, f->card + 0x110000, 8, &c),
			 -EPERM);
	assert_int_equal(mic_dma_request_chan(&cdev, 4, 0x120000, f->card + 0x120000, 8, &cc), 0);
	fx_fill(f, f->card + (1 << 20) * 8, 1 << 20);
	assert_int_equal(mic_dma_memcpy_timeout(hc, 9 << 20, 8 << 20, 1 << 20, MIC_DMA_WAIT_POLL,
						10000), 0);
	assert_int_equal(mic_dma_memcpy_timeout(cc, 10 << 20, 9 << 20, 1 << 20, MIC_DMA_WAIT_POLL,
						10000), 0);
	assert_memory_equal(f->card + (10 << 20), f->card + (8 << 20), 1 << 20);
	mic_dma_release_chan(&hdev, hc);
	assert_int_equal(mic_dma_request_chan(&hdev, 0, 0x100000, f->card + 0x100000, 8, &hc), 0);
	/* Teardown closes what users left open. */
	mbus_destroy(&hbus);
	mbus_destroy(&cbus);
	assert_null(hdev.driver);
	assert_null(cdev.priv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(probe_and_remove_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(failed_probe_leaves_device_unbound, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(interrupts_through_the_bus, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(dma_driver_on_the_bus, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
