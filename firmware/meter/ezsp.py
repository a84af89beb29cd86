# EZSP (EmberZNet Serial Protocol) host side, above meter/ash.py: frame
# headers, the few commands the meter link sends, and decoding of the
# responses and callbacks it uses. No I/O and no asyncio here (that is
# meter/ezsp_link.py): build a command into `tx`, send it with ASH, pass
# every received EZSP frame to `frame()`.
#
# Header formats (UG100): until the version is negotiated every frame uses
# the legacy header [seq, control, frameId]; with EZSP 8 and later the
# extended header [seq, control lo, control hi (format version 1), frameId
# lo, frameId hi] follows. Versions 8 to 19 are spoken: 8..13 share one
# parameter layout for these commands; from 14 statuses are four-byte
# sl_status values and sendUnicast, incomingMessageHandler and
# messageSentHandler changed (docs/meter-ezsp.md). Statuses are handed up
# normalised to the EmberStatus numbers below whatever the version.
#
# Read-only towards the meter: the only over-the-air command that can be
# built is sendUnicast, and send_unicast() refuses any payload that is not a
# ZCL Read Attributes or, to the Price cluster only, GetCurrentPrice, or, to
# the Messaging cluster only, GetLastMessage (requests that only ask; never
# MessageConfirmation); frame ids outside CMD_ALLOWED cannot be built.
import micropython
from micropython import const

V_MIN = const(8)
V_MAX = const(19)  # newest layout bellows knows; 14+ use sl_status (V_SL)
V_SL = const(14)

# Commands (host -> NCP).
VERSION = const(0x00)
GET_LIBRARY_STATUS = const(0x01)
ADD_ENDPOINT = const(0x02)
NOP = const(0x05)
NETWORK_INIT = const(0x17)
NETWORK_STATE = const(0x18)
START_SCAN = const(0x1A)
JOIN_NETWORK = const(0x1F)
GET_EUI64 = const(0x26)
SEND_UNICAST = const(0x34)
SET_CONFIG = const(0x53)
SET_POLICY = const(0x55)
SET_INITIAL_SECURITY = const(0x68)
INVALID_COMMAND = const(0x58)  # NCP's answer to a frame it rejects
# Callbacks (NCP -> host).
STACK_STATUS = const(0x19)
NETWORK_FOUND = const(0x1B)
SCAN_COMPLETE = const(0x1C)
MESSAGE_SENT = const(0x3F)
INCOMING_MESSAGE = const(0x45)
KEY_ESTABLISHMENT = const(0x9B)

# Every frame id the firmware can send. Nothing else can be built.
CMD_ALLOWED = (
    VERSION,
    GET_LIBRARY_STATUS,
    ADD_ENDPOINT,
    NOP,
    NETWORK_INIT,
    NETWORK_STATE,
    START_SCAN,
    JOIN_NETWORK,
    GET_EUI64,
    SEND_UNICAST,
    SET_CONFIG,
    SET_POLICY,
    SET_INITIAL_SECURITY,
)

# EmberStatus values used by the link.
SUCCESS = const(0x00)
NETWORK_UP = const(0x90)
NETWORK_DOWN = const(0x91)
NOT_JOINED = const(0x93)
JOIN_FAILED = const(0x94)

PROFILE_SE = const(0x0109)
PRICE_CLUSTER = const(0x0700)  # GetCurrentPrice allowed (a request that only asks)
MESSAGING_CLUSTER = const(0x0703)  # GetLastMessage allowed (idem; MessageConfirmation never)
CBKE_LIBRARY = const(0x06)  # EMBER_CBKE_LIBRARY_ID (163k1)
CBKE_283K1_LIBRARY = const(0x0D)
LIBRARY_PRESENT = const(0x80)  # EMBER_LIBRARY_PRESENT_MASK; 0xFF = error

# APS options for reads: retry, route discovery, APS encryption (SE).
APS_OPTIONS = const(0x0160)


class NotAllowed(Exception):
    pass


def _sl(v):
    # sl_status (EZSP 14+) -> the EmberStatus number the link compares with.
    if v == 0:
        return SUCCESS
    if v == 0x15:
        return NETWORK_UP
    if v == 0x16:
        return NETWORK_DOWN
    if v == 0x17:
        return NOT_JOINED  # also what EZSP 14+ reports for a failed join
    return 0x01  # EMBER_ERR_FATAL: some other failure


class Ezsp:
    # Callbacks set by the link (None: ignored):
    #   on_incoming(cluster, src_ep, sender, lqi, rssi, buf, off, n)
    #     - Smart Energy profile only; buf[off:off+n] is the ZCL frame
    #   on_stack_status(status)
    #   on_network_found(channel, pan, ext_pan_bytes(8), allowing_join, profile, update_id)
    #   on_scan_complete(channel, status)
    #   on_message_sent(status)
    #   on_key_establishment(status)
    def __init__(self):
        self.tx = bytearray(128)
        self.rsp = bytearray(128)  # parameters of the last response
        self.rsp_n = 0
        self.rsp_ready = False
        self.rsp_invalid = False  # NCP answered invalidCommand
        self.ext = False  # extended header (EZSP 8+) in use
        self.sl = False  # sl_status and the EZSP 14 layouts in use
        self.version = 0
        self.seq = 0
        self._pid = -1  # frame id awaiting its response
        self._pseq = 0
        self.on_incoming = None
        self.on_stack_status = None
        self.on_network_found = None
        self.on_scan_complete = None
        self.on_message_sent = None
        self.on_key_establishment = None
        self.on_bad = None  # on_bad(reason): a malformed frame (capture decoder)
        # Counters.
        self.responses = 0
        self.callbacks = 0
        self.bad = 0  # malformed EZSP frames
        self.unknown = 0  # callbacks we do not use
        self.other_profile = 0  # incoming messages not Smart Energy
        self.overflow = 0  # NCP reported overflow / truncation
        self.refused = 0  # sends refused by the read-only guard

    def _bad(self, reason):
        self.bad += 1
        if self.on_bad is not None:
            self.on_bad(reason)

    def set_version(self, v):
        self.version = v
        self.ext = v >= V_MIN
        self.sl = v >= V_SL

    def status(self, i=0):
        # Status in the last response at rsp[i], as an EmberStatus number.
        if not self.sl:
            return self.rsp[i]
        r = self.rsp
        return _sl(r[i] | (r[i + 1] << 8) | (r[i + 2] << 16) | (r[i + 3] << 24))

    def reset(self):
        # After an ASH reset the NCP expects the legacy header again.
        self.ext = False
        self.sl = False
        self.version = 0
        self._pid = -1
        self.rsp_ready = False

    # -- building -------------------------------------------------------------
    def _begin(self, fid):
        if fid not in CMD_ALLOWED:
            self.refused += 1
            raise NotAllowed("EZSP frame 0x%02x is not on the whitelist" % fid)
        tx = self.tx
        tx[0] = self.seq
        tx[1] = 0x00
        self._pid = fid
        self._pseq = self.seq
        self.seq = (self.seq + 1) & 0xFF
        self.rsp_ready = False
        self.rsp_invalid = False
        if self.ext:
            tx[2] = 0x01  # frame format version 1, no security, no padding
            tx[3] = fid & 0xFF
            tx[4] = fid >> 8
            return 5
        tx[2] = fid
        return 3

    def _u16(self, i, v):
        self.tx[i] = v & 0xFF
        self.tx[i + 1] = (v >> 8) & 0xFF
        return i + 2

    def _u32(self, i, v):
        self._u16(i, v & 0xFFFF)
        return self._u16(i + 2, v >> 16)

    def _copy(self, i, data, n):
        tx = self.tx
        for k in range(n):
            tx[i + k] = data[k]
        return i + n

    def cmd(self, fid, a=None, b=None):
        # Commands with up to two one-byte parameters (version, nop,
        # networkState, getLibraryStatus, setPolicy, getEui64). Returns n.
        i = self._begin(fid)
        if a is not None:
            self.tx[i] = a
            i += 1
        if b is not None:
            self.tx[i] = b
            i += 1
        return i

    def set_config(self, config_id, value):
        i = self._begin(SET_CONFIG)
        self.tx[i] = config_id
        return self._u16(i + 1, value)

    def network_init(self, bitmask=0):
        return self._u16(self._begin(NETWORK_INIT), bitmask)

    def add_endpoint(self, ep, profile, device, in_clusters, out_clusters):
        i = self._begin(ADD_ENDPOINT)
        self.tx[i] = ep
        i = self._u16(i + 1, profile)
        i = self._u16(i, device)
        self.tx[i] = 0  # device version
        self.tx[i + 1] = len(in_clusters)
        self.tx[i + 2] = len(out_clusters)
        i += 3
        for c in in_clusters:
            i = self._u16(i, c)
        for c in out_clusters:
            i = self._u16(i, c)
        return i

    def set_initial_security(self, bitmask, key, tc_eui64=None):
        # EmberInitialSecurityState: bitmask, preconfigured key, network key
        # (zero: the trust centre sends it), key sequence, trust centre EUI64.
        i = self._u16(self._begin(SET_INITIAL_SECURITY), bitmask)
        i = self._copy(i, key, 16)
        for k in range(16 + 1):
            self.tx[i + k] = 0
        i += 17
        for k in range(8):
            self.tx[i + k] = tc_eui64[k] if tc_eui64 else 0
        return i + 8

    def start_scan(self, channel_mask, duration):
        i = self._begin(START_SCAN)
        self.tx[i] = 1  # active scan
        i = self._u32(i + 1, channel_mask)
        self.tx[i] = duration
        return i + 1

    def join_network(self, node_type, ext_pan, pan, channel, tx_power, update_id):
        i = self._begin(JOIN_NETWORK)
        self.tx[i] = node_type
        i = self._copy(i + 1, ext_pan, 8)
        i = self._u16(i, pan)
        self.tx[i] = tx_power
        self.tx[i + 1] = channel
        self.tx[i + 2] = 0  # join method: MAC association
        i = self._u16(i + 3, 0)  # nwkManagerId
        self.tx[i] = update_id
        return self._u32(i + 1, 0)  # channels

    def send_unicast(self, dest, profile, cluster, src_ep, dst_ep, tag, zcl, n):
        # The only way to put bytes on the air towards the meter. Refuses
        # anything but a ZCL Read Attributes (profile-wide, client to
        # server, not manufacturer-specific, command 0x00) and, on the
        # Price cluster, GetCurrentPrice (cluster-specific 0x01, command
        # 0x00, one options byte 0 or 1), and on the Messaging cluster
        # GetLastMessage (0x01, command 0x00, no payload): all only ask.
        read = n >= 5 and zcl[0] == 0x00 and zcl[2] == 0x00 and n & 1 and n <= 3 + 2 * 16
        ask = cluster == PRICE_CLUSTER and n == 4 and zcl[0] == 0x01 and zcl[2] == 0x00 and zcl[3] <= 1
        last = cluster == MESSAGING_CLUSTER and n == 3 and zcl[0] == 0x01 and zcl[2] == 0x00
        if not (read or ask or last):
            self.refused += 1
            raise NotAllowed("only ZCL Read Attributes, GetCurrentPrice and GetLastMessage may be sent to the meter")
        i = self._begin(SEND_UNICAST)
        tx = self.tx
        tx[i] = 0  # EMBER_OUTGOING_DIRECT
        i = self._u16(i + 1, dest)
        i = self._u16(i, profile)
        i = self._u16(i, cluster)
        tx[i] = src_ep
        tx[i + 1] = dst_ep
        i = self._u16(i + 2, APS_OPTIONS)
        i = self._u16(i, 0)  # group id
        tx[i] = 0  # APS sequence: assigned by the stack
        tx[i + 1] = tag
        if self.sl:
            tx[i + 2] = 0  # message tag is 16 bits from EZSP 14
            i += 1
        tx[i + 2] = n
        return self._copy(i + 3, zcl, n)

    # -- receiving ------------------------------------------------------------
    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def frame(self, buf, off, n):
        # One EZSP frame from the NCP (ASH on_frame).
        if self.ext:
            if n < 5 or buf[off + 2] & 0x80:  # too short, or security on
                self._bad("EZSP header short or secured")
                return
            fid = buf[off + 3] | (buf[off + 4] << 8)
            p = off + 5
        else:
            if n < 3:
                self._bad("EZSP header short")
                return
            fid = buf[off + 2]
            p = off + 3
        fc = buf[off + 1]
        end = off + n
        if not fc & 0x80:  # a command, not a response: NCPs never send these
            self._bad("EZSP command from NCP")
            return
        if fc & 0x18:
            self.overflow += 1
        if not fc & 0x03 and buf[off] == self._pseq and (fid == self._pid or fid == INVALID_COMMAND):
            rsp = self.rsp
            m = end - p
            if m > len(rsp):
                self._bad("EZSP response too long")
                return
            for k in range(m):
                rsp[k] = buf[p + k]
            self.rsp_n = m
            self.rsp_invalid = fid == INVALID_COMMAND
            self.rsp_ready = True
            self._pid = -1
            self.responses += 1
            return
        self._callback(fid, buf, p, end)

    def _st(self, b, i):
        if not self.sl:
            return b[i]
        return _sl(b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24))

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _callback(self, fid, b, p, end):
        m = end - p
        if fid == INCOMING_MESSAGE:
            # <14: type, APS frame (11), lqi, rssi, sender, binding, address, LV
            # 14+: type, APS frame, sender, EUI64, binding, address, lqi, rssi,
            #      timestamp (4), LV
            if self.sl:
                q, lq, sd = 30, 24, 12
            else:
                q, lq, sd = 18, 12, 14
            if m < q + 1 or m < q + 1 + b[p + q]:
                self._bad("incomingMessage truncated")
                return
            self.callbacks += 1
            profile = b[p + 1] | (b[p + 2] << 8)
            if profile != PROFILE_SE:
                self.other_profile += 1
                return
            rssi = b[p + lq + 1]
            if self.on_incoming is not None:
                self.on_incoming(
                    b[p + 3] | (b[p + 4] << 8),
                    b[p + 5],
                    b[p + sd] | (b[p + sd + 1] << 8),
                    b[p + lq],
                    rssi - 256 if rssi > 127 else rssi,
                    b,
                    p + q + 1,
                    b[p + q],
                )
        elif fid == STACK_STATUS:
            if m < (4 if self.sl else 1):
                self._bad("stackStatus truncated")
                return
            self.callbacks += 1
            if self.on_stack_status is not None:
                self.on_stack_status(self._st(b, p))
        elif fid == NETWORK_FOUND:
            if m < 16:
                self._bad("networkFound truncated")
                return
            self.callbacks += 1
            if self.on_network_found is not None:
                self.on_network_found(
                    b[p], b[p + 1] | (b[p + 2] << 8), bytes(b[p + 3 : p + 11]), b[p + 11], b[p + 12], b[p + 13]
                )
        elif fid == SCAN_COMPLETE:
            if m < (5 if self.sl else 2):
                self._bad("scanComplete truncated")
                return
            self.callbacks += 1
            if self.on_scan_complete is not None:
                self.on_scan_complete(b[p], self._st(b, p + 1))
        elif fid == MESSAGE_SENT:
            # <14: type, destination, APS frame (11), tag, status, LV
            # 14+: status (4), type, destination, APS frame, tag (2), LV
            if m < (21 if self.sl else 17):
                self._bad("messageSent truncated")
                return
            self.callbacks += 1
            if self.on_message_sent is not None:
                self.on_message_sent(self._st(b, p) if self.sl else b[p + 15])
        elif fid == KEY_ESTABLISHMENT:
            if m < 9:
                self._bad("keyEstablishment truncated")
                return
            self.callbacks += 1
            if self.on_key_establishment is not None:
                self.on_key_establishment(b[p + 8])
        else:
            self.unknown += 1
