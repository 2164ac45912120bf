"""Console checks driven through the host PTY, as a person's terminal would.

usage: console_io.py LINK MODE
  attach   : several attach/detach cycles while the card writes 200000
             numbered lines; every line must arrive once, in order
  type     : keep typing into the console until the file STOP exists
  escape   : `micctl console CARD` on a terminal: raw mode, a command
             answered, Ctrl-] detaches with status 0 and the terminal back
             in cooked mode (MICCTL and CARD as further arguments)
  winch    : `micctl console CARD` on a terminal whose window is resized
             (TIOCSWINSZ, which sends SIGWINCH): `stty size` typed in the
             card shell 100 ms after each resize shows the new size, and
             after three quick resizes the last one; prints how long the
             card's shell took to see each change (a WINCH trap)
             (MICCTL and CARD as further arguments)
"""
import os, select, sys, time

link, mode = sys.argv[1], sys.argv[2]

def attach():
    return os.open(link, os.O_RDWR | os.O_NOCTTY)

def read_for(fd, seconds):
    out, end = b"", time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:  # a pty whose other side has closed
                break
    return out

if mode == "attach":
    n = 200000
    fd = attach()
    os.write(fd, b"seq 1 %d | sed 's/^/L/'\n" % n)
    data = read_for(fd, 0.3)
    os.close(fd)
    for cycle in range(8):          # detached: the card keeps writing
        time.sleep(0.2)
        fd = attach()
        data += read_for(fd, 0.2)
        os.close(fd)
    fd = attach()
    quiet = 0
    while quiet < 10:
        chunk = read_for(fd, 0.1)
        data += chunk
        quiet = 0 if chunk else quiet + 1
    os.close(fd)
    lines = [l for l in data.replace(b"\r", b"").split(b"\n") if l.startswith(b"L")]
    want = [b"L%d" % i for i in range(1, n + 1)]
    if lines != want:
        missing = len(want) - len(lines)
        print("console lost or reordered output: got %d lines, want %d (diff %d)" % (len(lines), n, missing))
        sys.exit(1)
    print("all %d lines arrived in order over 10 attachments" % n)
elif mode == "escape":
    import pty, termios
    micctl, card = sys.argv[3], sys.argv[4]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(micctl, [micctl, "console", card])
    out = read_for(fd, 0.5)
    os.write(fd, b"echo escape-$((6*7))\r")
    end = time.time() + 5
    while b"escape-42" not in out and time.time() < end:
        out += read_for(fd, 0.1)
    raw_inside = not (termios.tcgetattr(fd)[3] & termios.ICANON)
    os.write(fd, b"\x1d")  # Ctrl-]
    out += read_for(fd, 0.5)
    _, status = os.waitpid(pid, 0)
    ok = b"escape-42" in out and raw_inside and b"detached" in out and os.WEXITSTATUS(status) == 0
    print("answered=%s raw=%s detached=%s status=%d" % (b"escape-42" in out, raw_inside,
          b"detached" in out, os.WEXITSTATUS(status)))
    sys.exit(0 if ok else 1)
elif mode == "winch":
    import fcntl, pty, re, struct, termios
    micctl, card = sys.argv[3], sys.argv[4]
    def resize(fd, rows, cols):
        # on the master: the kernel sends SIGWINCH to micctl, as a
        # terminal emulator's resize does
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    def until(fd, pattern, seconds):
        out, end = b"", time.time() + seconds
        while time.time() < end:
            out += read_for(fd, 0.005)
            m = re.search(pattern, out)
            if m:
                return m, out
        return None, out
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(micctl, [micctl, "console", card])
    resize(fd, 30, 90)
    read_for(fd, 0.5)
    # the card shell prints its terminal's size whenever it changes
    os.write(fd, b"set +m; trap 'echo SIZE=$(stty size)' WINCH; while true; do sleep 0.01; done\r")
    read_for(fd, 0.5)
    ok = True
    for rows, cols in ((40, 120), (24, 80), (50, 160), (33, 101)):
        t0 = time.time()
        resize(fd, rows, cols)
        m, out = until(fd, rb"SIZE=%d %d" % (rows, cols), 2)
        print("%dx%d: trap %s after %.1f ms" % (cols, rows, "ran" if m else "did NOT run",
                                                  (time.time() - t0) * 1000))
        ok = ok and m is not None
    os.write(fd, b"\x03")  # Ctrl-C ends the loop
    read_for(fd, 0.3)
    # the size is there 100 ms after the resize
    for rows, cols in ((45, 130), (25, 81)):
        resize(fd, rows, cols)
        time.sleep(0.1)
        os.write(fd, b"stty size\r")
        m, out = until(fd, rb"\n%d %d\r" % (rows, cols), 2)
        print("stty size 100 ms after a resize to %dx%d: %s" % (cols, rows, "right" if m else repr(out[-60:])))
        ok = ok and m is not None
    # three resizes in a row, 5 ms apart: the last one wins
    for rows, cols in ((41, 91), (42, 92), (43, 93)):
        resize(fd, rows, cols)
        time.sleep(0.005)
    time.sleep(0.1)
    os.write(fd, b"stty size\r")
    m, out = until(fd, rb"\n43 93\r", 2)
    print("after 3 quick resizes stty size says %s" % ("43 93" if m else repr(out[-60:])))
    os.write(fd, b"\x1d")
    read_for(fd, 0.3)
    os.waitpid(pid, 0)
    sys.exit(0 if ok and m is not None else 1)
elif mode == "type":
    fd = attach()
    stop = sys.argv[3]
    sent = 0
    while not os.path.exists(stop):
        try:
            os.write(fd, b"echo typed-during-reboot\n")
            sent += 1
        except BlockingIOError:
            pass
        read_for(fd, 0.01)
    os.close(fd)
    print("typed %d lines" % sent)
