"""An EmberZNet network co-processor (NCP) over ASH, for the firmware's tests.

Plays the co-processor side of EZSP-over-ASH, joined (or joinable) to a
Smart Energy meter whose household follows tools/ihd/emulators/loadprofile.py. Every frame
is built and parsed with third-party code so the firmware is checked against
code nobody here wrote: ASH frames with bellows.ash (frame classes, stuffing,
randomisation, CRC), EZSP parameters with bellows' own per-version command
schemas (bellows.ezsp.vN.commands), ZCL payloads with zigpy.zcl.foundation
and the Metering cluster's attribute types, the install-code link key with
zigpy.util.convert_install_code.

Interface (used by tools/ihd/emulators/ezsp_session.py, and directly by tests):

    ncp = EzspNcp(meter, send_bytes, version=13, cbke=True, joined=True,
                  install_code=None, multiplier=1, divisor=1000, seed=1,
                  tariff=None)  # ihd.emulators.tariff.Tariff; default 27.35p, 53.22p/day
    ncp.feed(data: bytes)     bytes the firmware wrote
    ncp.tick(now_s, deliver=True)  simulated time: the meter's reports now
                              due, sent (network up, deliver) or withheld;
                              returns one dict per report, as logged
    ncp.next_due()            simulated time of the next report
    ncp.power_cycle(code=2)   the NCP restarts: state lost, RSTACK sent
    ncp.fail(code=0x51)       ASH ERROR frame, deaf until the host's RST
    ncp.network_down()        stackStatusHandler(NETWORK_DOWN)
    ncp.poll_ash()            real-time ASH retransmission (call often)

The ASH side (frame numbers, ACK/NAK, retransmission) is tools/ihd/emulators/ncp_ash.py.
`meter` is ihd.emulators.loadprofile.Meter (advance_to(t), demand_w(),
delivered_ws, received_ws); `send_bytes(b)` writes to the firmware.
Every ZCL frame the firmware sends over the air is recorded in
`ncp.sent_zcl` as (cluster, zigpy ZCLHeader, payload bytes), and any that is
not Read Attributes (or, on the Price cluster, GetCurrentPrice) increments
`ncp.violations`.

The meter is also the ESI's Price server (cluster 0x0700, SE 1.x): it
answers GetCurrentPrice with PublishPrice, pushes PublishPrice when the
tariff's price changes (to a host that asked with "Rx on when idle"), and
has the StandingCharge attribute (0x0301). zigpy 2.4.0 defines the Price
cluster's id but none of its commands or attributes, so PublishPrice is
laid out here from the SE specification with zigpy's field types; each
price sent is logged as {"kind": "price", ...} (take_polls()).

`supplier` (ihd.emulators.supplier.Supplier) adds a prepayment meter (Prepayment
cluster attributes, Metering SupplyStatus), scripted messages (Messaging:
DisplayMessage / CancelMessage / CancelAllMessages pushed when due, the
message on show in answer to GetLastMessage), the meter's identity and
ambient indicator (tools/ihd/emulators/ncp_extras.py). GetLastMessage is the other
request that only asks; MessageConfirmation counts as a violation.
"""

from __future__ import annotations

import random
import sys

import bellows.types as t
import zigpy.types as zt
from bellows import ash
from bellows.ezsp import EZSP
from zigpy.util import convert_install_code
from zigpy.zcl import foundation as f
from zigpy.zcl.clusters.general import Time
from zigpy.zcl.clusters.smartenergy import Metering

from ihd.emulators import ncp_extras  # noqa: E402
from ihd.emulators.gas_meter import GAS_EP, REPORT_S, GasMeter  # noqa: E402
from ihd.emulators.meter_history import MeterHistory  # noqa: E402
from ihd.emulators.ncp_ash import AshNcp  # noqa: E402
from ihd.emulators.supplier import Supplier  # noqa: E402
from ihd.emulators.tariff import PROVIDER_ID, RATE_LABEL, Tariff  # noqa: E402

PRICE_CLUSTER = 0x0700
A_STANDING_CHARGE = 0x0301

METER_NWK = 0x0000
METER_EP = 9
METER_EUI = zt.EUI64.convert("00:0d:6f:00:0a:90:11:22")
NCP_EUI = zt.EUI64.convert("00:0d:6f:00:0b:12:34:56")
EXT_PAN = zt.ExtendedPanId.convert("00:0d:6f:00:0a:90:11:22")
PAN_ID = 0x1A62
CHANNEL = 15
ZIGBEE_EPOCH = 946684800


class EzspNcp(AshNcp):
    def __init__(
        self,
        meter,
        send_bytes,
        *,
        version: int = 13,
        cbke: bool = True,
        joined: bool = True,
        install_code: bytes | None = None,
        multiplier: int = 1,
        divisor: int = 1000,
        seed: int = 1,
        summation_interval: int = 60,
        tariff: Tariff | None = None,
        supplier: Supplier | None = None,
        gas: GasMeter | None = None,
    ):
        super().__init__(send_bytes)
        # a mirrored gas meter on endpoint GAS_EP (tools/ihd/emulators/gas_meter.py), reporting every 30 minutes
        self.gas = gas
        self.next_gas: int | None = None
        self.meter = meter
        self.version = version
        self.commands = EZSP._BY_VERSION[version].COMMANDS
        self.by_id = {v[0]: (k, v[1], v[2]) for k, v in self.commands.items()}
        self.legacy = EZSP._BY_VERSION[4].COMMANDS
        self.cbke = cbke
        self.joined = joined  # network state kept in the NCP's tokens
        self.link_key = convert_install_code(install_code) if install_code else None
        self.multiplier = multiplier
        self.divisor = divisor
        self.rng = random.Random(seed)
        self.summation_interval = summation_interval
        self.tariff = tariff or Tariff(int(meter.t))
        # history attributes and the Time cluster's zone (tools/ihd/emulators/meter_history.py)
        self.history = MeterHistory(meter)
        self.price_sent: tuple | None = None  # (raw, tier) last published
        self.supplier = supplier or Supplier()
        self.start = int(meter.t)  # the message script's time origin
        self.price_subscribed = False  # a GetCurrentPrice with Rx on when idle came
        self.now = float(meter.t)  # simulated time, from tick()
        self.sent_zcl: list[tuple[int, f.ZCLHeader, bytes]] = []
        self.violations = 0
        self.polls: list[dict] = []  # poll answers not yet logged (take_polls)
        # the meter's report schedule: the meter's own, kept across NCP restarts
        self.next_demand: int | None = None
        self.next_summation: int | None = None
        self._power_on(send_rstack=False)

    # -- state -----------------------------------------------------------------
    def _power_on(self, send_rstack: bool, code: int = 2) -> None:
        self._ash_reset()
        self.negotiated = 0  # EZSP version agreed with the host (0: none yet)
        self.network_up = False
        self.key = None
        self.zcl_tsn = self.rng.randrange(256)
        if send_rstack:
            self._rstack(code)

    def _on_rst(self) -> None:
        # The host's RST: a software reset, answered with RSTACK.
        self._power_on(send_rstack=True, code=t.NcpResetCode.RESET_SOFTWARE)
        self.connected = True

    def power_cycle(self, code: int = 2) -> None:
        """The co-processor restarts (power-on): everything volatile is lost."""
        self._buf.clear()
        self._power_on(send_rstack=True, code=code)
        self.connected = True

    def fail(self, code: int = 0x51) -> None:
        """ASH failure: send ERROR and ignore everything until the host's RST."""
        self._write(ash.ErrorFrame(version=2, reset_code=t.NcpResetCode(code)))
        self.connected = False
        self.network_up = False

    def network_down(self) -> None:
        """The radio network goes down (e.g. the meter rebooted); networkInit brings it back."""
        self.network_up = False
        self._queue_pos(0, "stackStatusHandler", True, self._st(t.EmberStatus.NETWORK_DOWN))
        self._pump()

    # -- EZSP ------------------------------------------------------------------
    def _queue(self, seq: int, name: str, callback: bool, **fields) -> None:
        ext = self.negotiated >= 8
        table = self.commands if ext or name != "version" else self.legacy
        cmd_id, _tx, rx_schema = table[name]
        data = t.serialize_dict((), fields, rx_schema)
        fc = 0x80 | (0x02 if callback else 0)
        if ext:
            hdr = bytes([seq, fc, 0x01]) + t.uint16_t(cmd_id).serialize()
        else:
            hdr = bytes([seq, fc, cmd_id])
        self.queue.append(hdr + data)

    def _callback(self, name: str, **fields) -> None:
        self._queue(0, name, True, **fields)

    def _queue_pos(self, seq: int, name: str, callback: bool, *values) -> None:
        """Fields by position: their names differ between EZSP versions."""
        self._queue(seq, name, callback, **dict(zip(self.commands[name][2], values, strict=True)))

    def _st(self, ember: int):
        """A status as this version sends it: EmberStatus, or sl_Status from EZSP 14."""
        if self.version >= 14:
            return t.sl_Status.from_ember_status(t.EmberStatus(ember))
        return t.EmberStatus(ember)

    def _command(self, frame: bytes) -> None:
        self.stats["commands"] += 1
        ext = self.negotiated >= 8 or (len(frame) >= 6 and frame[2:5] == b"\x01\x00\x00")
        self._rx_ext = ext
        if ext:
            seq, fid, params = frame[0], int.from_bytes(frame[3:5], "little"), frame[5:]
        else:
            seq, fid, params = frame[0], frame[2], frame[3:]
        if self.negotiated == 0 and fid != 0x00:
            return  # UG100: nothing but version before the version command
        name, tx_schema, _rx = self.by_id.get(fid, (None, None, None))
        if name is None:
            self._queue_pos(seq, "invalidCommand", False, self._inv())
            return
        args, _rest = t.deserialize_dict(params, tx_schema)
        getattr(self, "_cmd_" + name, self._cmd_default)(seq, name, args)

    def _cmd_default(self, seq, name, args) -> None:
        self._queue_pos(seq, "invalidCommand", False, self._inv())

    def _inv(self):
        return t.sl_Status.INVALID_PARAMETER if self.version >= 14 else t.EzspStatus.ERROR_INVALID_FRAME_ID

    def _cmd_version(self, seq, name, args) -> None:
        # UG100: the first version command and its answer use the legacy
        # header; once the host asks for our version (>= 8) the extended
        # header is used, including for a second version command.
        desired = args["desiredProtocolVersion"]
        if self._rx_ext and desired == self.version:
            self.negotiated = self.version
        self._queue(seq, name, False, protocolVersion=self.version, stackType=2, stackVersion=0x7440)
        if desired == self.version:
            self.negotiated = self.version
        elif self.negotiated == 0:
            self.negotiated = -1

    def _ok(self, seq, name, **extra) -> None:
        self._queue(seq, name, False, status=0, **extra)  # SUCCESS (EmberStatus and EzspStatus alike)

    def _cmd_nop(self, seq, name, args) -> None:
        self._queue(seq, name, False)

    def _cmd_setConfigurationValue(self, seq, name, args) -> None:
        self._ok(seq, name)

    def _cmd_setPolicy(self, seq, name, args) -> None:
        self._ok(seq, name)

    def _cmd_addEndpoint(self, seq, name, args) -> None:
        self._ok(seq, name)

    def _cmd_getEui64(self, seq, name, args) -> None:
        self._queue(seq, name, False, eui64=NCP_EUI)

    def _cmd_getLibraryStatus(self, seq, name, args) -> None:
        lib = args["libraryId"]
        present = self.cbke and lib in (0x06, 0x0D)
        self._queue(seq, name, False, status=0x80 if present else 0x00)

    def _cmd_networkState(self, seq, name, args) -> None:
        self._queue(seq, name, False, status=2 if self.network_up else 0)

    def _cmd_networkInit(self, seq, name, args) -> None:
        if not self.joined:
            self._queue_pos(seq, name, False, self._st(t.EmberStatus.NOT_JOINED))
            return
        self._ok(seq, name)
        self._up()

    def _up(self) -> None:
        self.network_up = True
        self._queue_pos(0, "stackStatusHandler", True, self._st(t.EmberStatus.NETWORK_UP))

    def _cmd_setInitialSecurityState(self, seq, name, args) -> None:
        self.key = bytes(args["state"].preconfiguredKey)
        self._ok(seq, name)

    def _cmd_startScan(self, seq, name, args) -> None:
        self._ok(seq, name)
        net = t.EmberZigbeeNetwork(
            channel=CHANNEL, panId=PAN_ID, extendedPanId=EXT_PAN, allowingJoin=True, stackProfile=2, nwkUpdateId=0
        )
        self._callback("networkFoundHandler", networkFound=net, lastHopLqi=220, lastHopRssi=-48)
        self._queue_pos(0, "scanCompleteHandler", True, CHANNEL, self._st(t.EmberStatus.SUCCESS))

    def _cmd_joinNetwork(self, seq, name, args) -> None:
        p = args["parameters"]
        self._ok(seq, name)
        if p.panId == PAN_ID and self.link_key is not None and self.key == bytes(self.link_key):
            self.joined = True
            self._up()
        else:  # the trust centre cannot decrypt/authenticate us
            self._queue_pos(0, "stackStatusHandler", True, self._st(t.EmberStatus.JOIN_FAILED))

    def _cmd_sendUnicast(self, seq, name, args) -> None:
        _type, dest, aps, tag, contents = args.values()  # names differ by version
        data = bytes(contents)
        hdr, payload = f.ZCLHeader.deserialize(data)
        self.sent_zcl.append((aps.clusterId, hdr, payload))
        is_read = (
            hdr.frame_control.is_general
            and hdr.command_id == f.GeneralCommand.Read_Attributes
            and not hdr.frame_control.is_manufacturer_specific
            and hdr.direction == f.Direction.Client_to_Server
        )
        # GetCurrentPrice (Price cluster, client to server, command 0x00,
        # one CommandOptions byte): a request that only asks
        is_ask = (
            aps.clusterId == PRICE_CLUSTER
            and hdr.frame_control.is_cluster
            and hdr.command_id == 0x00
            and not hdr.frame_control.is_manufacturer_specific
            and hdr.direction == f.Direction.Client_to_Server
            and len(payload) == 1
        )
        # GetLastMessage (Messaging, client to server, command 0x00, no
        # payload): asks for the message on show
        is_last = (
            aps.clusterId == ncp_extras.MESSAGING
            and hdr.frame_control.is_cluster
            and hdr.command_id == 0x00
            and not hdr.frame_control.is_manufacturer_specific
            and hdr.direction == f.Direction.Client_to_Server
            and len(payload) == 0
        )
        if not (is_read or is_ask or is_last):
            self.violations += 1
        if not self.network_up:
            self._queue_pos(seq, name, False, self._st(t.EmberStatus.NETWORK_DOWN), 0)
            return
        self._queue_pos(seq, name, False, self._st(t.EmberStatus.SUCCESS), self.rng.randrange(256))
        direct = t.EmberOutgoingMessageType.OUTGOING_DIRECT
        ok = self._st(t.EmberStatus.SUCCESS)
        if self.version >= 14:
            self._queue_pos(0, "messageSentHandler", True, ok, direct, dest, aps, tag, b"")
        else:
            self._queue_pos(0, "messageSentHandler", True, direct, dest, aps, tag, ok, b"")
        if is_read and self.gas is not None and aps.destinationEndpoint == GAS_EP:
            ids, _ = f.GENERAL_COMMANDS[f.GeneralCommand.Read_Attributes].schema.deserialize(payload)
            self._gas_response(aps.clusterId, hdr.tsn, ids.attribute_ids)
        elif is_read:
            ids, _ = f.GENERAL_COMMANDS[f.GeneralCommand.Read_Attributes].schema.deserialize(payload)
            self._read_response(aps.clusterId, hdr.tsn, ids.attribute_ids)
        elif is_ask:
            self.price_subscribed = bool(payload[0] & 0x01)
            self._publish_price(hdr.tsn, "answer")
        elif is_last:
            self._last_message(hdr.tsn)

    def _last_message(self, tsn: int) -> None:
        m = self.supplier.showing(self.now)
        if m is None:  # none on show: Default Response NOT_FOUND
            hdr = f.ZCLHeader.general(tsn, f.GeneralCommand.Default_Response, direction=f.Direction.Server_to_Client)
            schema = f.GENERAL_COMMANDS[f.GeneralCommand.Default_Response].schema
            self._send_zcl(ncp_extras.MESSAGING, hdr, schema(command_id=0x00, status=f.Status.NOT_FOUND).serialize())
        else:
            hdr = f.ZCLHeader.cluster(tsn, ncp_extras.DISPLAY, direction=f.Direction.Server_to_Client)
            self._send_zcl(ncp_extras.MESSAGING, hdr, ncp_extras.display_message(m))
        self.polls.append({"t": int(self.now), "kind": "message", "what": "last", "id": m and m["id"]})

    # -- the meter's ZCL ---------------------------------------------------------
    def _history_attr(self, cluster: int, attr: int):
        # Metering 0x0401-0x045A and Time 0x0002-0x0005 (zigpy defines few
        # of them): uint24 days and weeks, uint32 months; invalid = all ones
        h = self.history
        if cluster == Time.cluster_id:
            v = h.time_attrs(int(self.now)).get(attr)
            if v is None:
                return None
            tid = f.DataType.int32.type_id if attr in (0x0002, 0x0005) else f.DataType.uint32.type_id
            return f.TypeValue(tid, zt.int32s(v) if attr in (0x0002, 0x0005) else zt.uint32_t(v))
        per = h.periods(int(self.now))
        if attr not in per:
            return None
        wh = per[attr]
        if attr >= 0x0440:
            raw = 0xFFFFFFFF if wh is None else wh * self.divisor // (1000 * self.multiplier)
            return f.TypeValue(f.DataType.uint32.type_id, zt.uint32_t(min(raw, 0xFFFFFFFF)))
        raw = 0xFFFFFF if wh is None else min(wh * self.divisor // (1000 * self.multiplier), 0xFFFFFE)
        return f.TypeValue(f.DataType.uint24.type_id, zt.uint24_t(raw))

    def _attr(self, cluster: int, attr: int):
        m = self.meter
        if (cluster == Metering.cluster_id and 0x0401 <= attr <= 0x045B) or (
            cluster == Time.cluster_id and 0x0002 <= attr <= 0x0005
        ):
            return self._history_attr(cluster, attr)
        extra = ncp_extras.attr(self.supplier, m, cluster, attr)
        if extra is not None:
            return extra
        if cluster == Metering.cluster_id:
            values = {
                0x0000: zt.uint48_t(m.delivered_ws * self.divisor // (3600 * 1000 * self.multiplier)),
                0x0001: zt.uint48_t(m.received_ws * self.divisor // (3600 * 1000 * self.multiplier)),
                0x0300: Metering.MeteringUnitofMeasure.Kwh_and_Kwh_binary,
                0x0301: zt.uint24_t(self.multiplier),
                0x0302: zt.uint24_t(self.divisor),
                0x0303: Metering.NumberFormatting(0x2B),
                0x0304: Metering.NumberFormatting(0x2B),
                0x0306: Metering.MeteringDeviceType.Electric_Metering,
                0x0400: zt.int24s(m.demand_w() * self.divisor // (1000 * self.multiplier)),
            }
            attrs = Metering.attributes
        elif cluster == Time.cluster_id:
            values = {0x0000: zt.uint32_t(int(self.now) - ZIGBEE_EPOCH), 0x0001: Time.TimeStatus(0x02)}
            attrs = Time.attributes
        elif cluster == PRICE_CLUSTER:
            # zigpy has no Price attributes: StandingCharge is uint32 (0x23)
            sc = self.tariff.standing
            if attr != A_STANDING_CHARGE or sc is None:
                return None
            return f.TypeValue(f.DataType.uint32.type_id, zt.uint32_t(sc))
        else:
            return None
        if attr not in values:
            return None
        return f.TypeValue(f.DataType.from_python_type(attrs[attr].type).type_id, values[attr])

    def _gas_attr(self, cluster: int, attr: int):
        # the mirrored gas meter's Metering attributes (zigpy's types) and its Price conversion
        g = self.gas
        if cluster == Metering.cluster_id:
            values = {
                0x0000: zt.uint48_t(g.register(self.now)),
                0x0300: Metering.MeteringUnitofMeasure.Cubic_Meter_and_Cubic_Meter_per_Hour_binary,
                0x0301: zt.uint24_t(1),
                0x0302: zt.uint24_t(1000),
                0x0303: Metering.NumberFormatting(0x2B),
                0x0306: Metering.MeteringDeviceType.Mirrored_Gas_Metering,
                # CurrentDayConsumptionDelivered: since the local midnight (the Time cluster's zone)
                0x0401: zt.uint24_t(g.current_day(self.now, self.history.midnight(self.history.day(int(self.now))))),
            }
            if attr not in values:
                return None
            typ = Metering.attributes[attr].type
            return f.TypeValue(f.DataType.from_python_type(typ).type_id, values[attr])
        if cluster == PRICE_CLUSTER:
            # zigpy has no Price attributes: SE 1.1+ ConversionFactor uint32, its
            # trailing digit map8 (bits 4-7), CalorificValue uint32, unit enum8, digit map8
            gm = sys.modules["ihd.emulators.gas_meter"]
            u32, m8, e8 = f.DataType.uint32.type_id, f.DataType.map8.type_id, f.DataType.enum8.type_id
            price = {
                0x0302: (u32, zt.uint32_t(gm.CF)),
                0x0303: (m8, zt.bitmap8(gm.CF_DIGITS << 4)),
                0x0304: (u32, zt.uint32_t(gm.CV)),
                0x0305: (e8, zt.enum8(gm.CV_MJ_M3)),
                0x0306: (m8, zt.bitmap8(gm.CV_DIGITS << 4)),
            }
            return f.TypeValue(*price[attr]) if attr in price else None
        return None

    def _send_read_response(self, cluster: int, tsn: int, ids, attr, src_ep: int = METER_EP) -> None:
        # Read Attributes Response: attr(cluster, id) -> TypeValue, or None (unsupported)
        recs = []
        for a in ids:
            v = attr(cluster, a)
            if v is None:
                recs.append(f.ReadAttributeRecord(a, f.Status.UNSUPPORTED_ATTRIBUTE))
            else:
                recs.append(f.ReadAttributeRecord(a, f.Status.SUCCESS, v))
        hdr = f.ZCLHeader.general(tsn, f.GeneralCommand.Read_Attributes_rsp, direction=f.Direction.Server_to_Client)
        schema = f.GENERAL_COMMANDS[f.GeneralCommand.Read_Attributes_rsp].schema
        self._send_zcl(cluster, hdr, schema(status_records=recs).serialize(), src_ep)

    def _gas_response(self, cluster: int, tsn: int, ids) -> None:
        self._send_read_response(cluster, tsn, ids, self._gas_attr, GAS_EP)
        if cluster == Metering.cluster_id and 0x0000 in ids:
            day = self.history.midnight(self.history.day(int(self.now)))
            cd = self.gas.current_day(self.now, day) if 0x0401 in ids else None
            self.polls.append(
                {"t": int(self.now), "kind": "gas_poll", "litres": self.gas.register(self.now), "day": cd}
            )

    def _send_zcl(self, cluster: int, hdr: f.ZCLHeader, payload: bytes, src_ep: int = METER_EP) -> None:
        aps = t.EmberApsFrame(
            profileId=0x0109,
            clusterId=cluster,
            sourceEndpoint=src_ep,
            destinationEndpoint=1,
            options=t.EmberApsOption(0x0140),
            groupId=0,
            sequence=self.rng.randrange(256),
        )
        kind = t.EmberIncomingMessageType.INCOMING_UNICAST
        lqi, rssi = self.rng.randint(180, 255), self.rng.randint(-75, -40)
        msg = hdr.serialize() + payload
        if self.version >= 14:
            values = (kind, aps, METER_NWK, METER_EUI, 0xFF, 0xFF, lqi, rssi, self.rng.randrange(1 << 32), msg)
        else:
            values = (kind, aps, lqi, rssi, METER_NWK, 0xFF, 0xFF, msg)
        self._queue_pos(0, "incomingMessageHandler", True, *values)

    def _read_response(self, cluster: int, tsn: int, ids) -> None:
        self._send_read_response(cluster, tsn, ids, self._attr)
        if cluster == ncp_extras.PREPAYMENT and self.supplier.prepay:
            self.polls.append({"t": int(self.now), "kind": "prepay", **self.supplier.state()})
        if cluster == Metering.cluster_id and 0x0400 in ids and 0x0000 in ids:
            # A poll answer: the host makes a reading of it (demand and
            # summation), so the simulator's accounting must see it too.
            self.polls.append({"t": int(self.now), "kind": "poll", **self._demand_log(), **self._summation_log()})

    def publish_price_payload(self, t: float) -> tuple[bytes, dict]:
        """PublishPrice's fields (SE 1.x, server to client, command 0x00) at simulated time t."""
        tf = self.tariff
        raw, tier = tf.at(t)
        now_zb = int(t) - ZIGBEE_EPOCH
        body = (
            zt.uint32_t(PROVIDER_ID).serialize()
            + zt.LVBytes(RATE_LABEL).serialize()
            + zt.uint32_t(tf.event_id(t)).serialize()
            + zt.uint32_t(now_zb).serialize()  # CurrentTime
            + zt.uint8_t(0x00).serialize()  # UnitOfMeasure: kWh
            + zt.uint16_t(tf.currency).serialize()
            + zt.uint8_t(tf.digits << 4 | tier).serialize()  # PriceTrailingDigit | PriceTier
            + zt.uint8_t((2 if tf.night else 1) << 4 | tier).serialize()  # NumberOfPriceTiers | RegisterTier
            + zt.uint32_t(now_zb).serialize()  # StartTime: now
            + zt.uint16_t(0xFFFF).serialize()  # DurationInMinutes: until changed
            + zt.uint32_t(raw).serialize()
            + zt.uint8_t(0xFF).serialize()  # PriceRatio: not used
        )
        log = {"raw": raw, "digits": tf.digits, "tier": tier, "currency": tf.currency, "standing": tf.standing}
        return body, log

    def _publish_price(self, tsn: int, why: str, t: float | None = None) -> None:
        t = self.now if t is None else t
        body, log = self.publish_price_payload(t)
        hdr = f.ZCLHeader.cluster(tsn, 0x00, direction=f.Direction.Server_to_Client)
        self._send_zcl(PRICE_CLUSTER, hdr, body)
        self.price_sent = (log["raw"], log["tier"])
        self.polls.append({"t": int(t), "kind": "price", "why": why, **log})

    def _report(self, cluster: int, ids) -> None:
        self.zcl_tsn = (self.zcl_tsn + 1) % 256
        hdr = f.ZCLHeader.general(
            self.zcl_tsn, f.GeneralCommand.Report_Attributes, direction=f.Direction.Server_to_Client
        )
        recs = [f.Attribute(a, self._attr(cluster, a)) for a in ids]
        schema = f.GENERAL_COMMANDS[f.GeneralCommand.Report_Attributes].schema
        self._send_zcl(cluster, hdr, schema(attribute_reports=recs).serialize())

    def _demand_log(self) -> dict:
        # The demand the host must read from the meter's value now, as logged.
        raw = int(self._attr(0x0702, 0x0400).value)
        return {"raw": raw, "demand_w": raw * 1000 * self.multiplier // self.divisor}

    def _summation_log(self) -> dict:
        # The registers the host must read from the meter's values now, as logged.
        d = int(self._attr(0x0702, 0x0000).value)
        r = int(self._attr(0x0702, 0x0001).value)
        k = 1000 * self.multiplier / self.divisor
        return {"raw_delivered": d, "delivered_wh": round(d * k), "received_wh": round(r * k)}

    def take_polls(self) -> list[dict]:
        """Poll answers sent since the last call, one dict each, as logged."""
        out, self.polls = self.polls, []
        return out

    def next_due(self) -> float | None:
        """Simulated time of the meter's next report (None before the first tick)."""
        if self.next_demand is None:
            return None
        return min(self.next_demand, self.next_summation, self.next_gas or self.next_demand)

    def tick(self, now_s: float, deliver: bool = True) -> list[dict]:
        """The meter's reports due by simulated time now_s: sent to the host
        as attribute reports when the network is up and deliver is true,
        else lost on the way ({"kind": "withheld"}: the dropout oracle).
        Returns one dict per report, as logged."""
        out: list[dict] = []
        self.now = now_s
        now = int(now_s)
        if self.next_demand is None:
            self.next_demand = now + self.rng.randint(1, 4)
            self.next_summation = now + self.summation_interval // 2
        send = deliver and self.network_up
        if self.gas is not None:
            if self.next_gas is None:
                self.next_gas = self.gas.next_report(now)
            while self.next_gas <= now:
                tg = self.next_gas
                self.now = tg
                if send:
                    self.zcl_tsn = (self.zcl_tsn + 1) % 256
                    hdr = f.ZCLHeader.general(
                        self.zcl_tsn, f.GeneralCommand.Report_Attributes, direction=f.Direction.Server_to_Client
                    )
                    recs = [f.Attribute(0x0000, self._gas_attr(Metering.cluster_id, 0x0000))]
                    schema = f.GENERAL_COMMANDS[f.GeneralCommand.Report_Attributes].schema
                    self._send_zcl(Metering.cluster_id, hdr, schema(attribute_reports=recs).serialize(), GAS_EP)
                if send:
                    out.append({"t": tg, "kind": "gas", "litres": self.gas.register(tg)})
                else:
                    out.append({"t": tg, "kind": "withheld", "what": "gas"})
                self.next_gas += REPORT_S
            self.now = now_s
        while min(self.next_demand, self.next_summation) <= now:
            ts = min(self.next_demand, self.next_summation)
            self.history.advance_to(ts)  # the register at each local midnight on the way
            self.meter.advance_to(ts)
            if send:
                self._price_change(ts)  # before any report made under the new price
            if ts == self.next_demand:
                if send:
                    self._report(0x0702, [0x0400])
                    out.append({"t": ts, "kind": "demand", **self._demand_log()})
                else:
                    out.append({"t": ts, "kind": "withheld", "what": "demand"})
                self.next_demand += self.rng.randint(4, 10)
            if ts == self.next_summation:
                if send:
                    self._report(0x0702, [0x0000, 0x0001])
                    out.append({"t": ts, "kind": "summation", **self._summation_log()})
                else:
                    out.append({"t": ts, "kind": "withheld", "what": "summation"})
                self.next_summation += self.summation_interval
        if send:
            self._price_change(now_s)
            self._supplier(now_s)
        self._pump()
        return out

    def _supplier(self, t: float) -> None:
        # credit spent at the price in force, and the message script
        sup = self.supplier
        if sup.prepay:
            sup.use(self.meter.delivered_ws // 3600, self.tariff.at(t)[0])
        for cmd, payload in ncp_extras.script_frames(sup, t, self.start):
            self.zcl_tsn = (self.zcl_tsn + 1) % 256
            hdr = f.ZCLHeader.cluster(self.zcl_tsn, cmd, direction=f.Direction.Server_to_Client)
            self._send_zcl(ncp_extras.MESSAGING, hdr, payload)
            self.polls.append({**sup.sent[-1], "t": int(t)})

    def _price_change(self, t: float) -> None:
        # A tariff change: pushed to a host that asked (Rx on when idle).
        if self.price_subscribed and self.price_sent != self.tariff.at(t):
            self.zcl_tsn = (self.zcl_tsn + 1) % 256
            self._publish_price(self.zcl_tsn, "change", t)
