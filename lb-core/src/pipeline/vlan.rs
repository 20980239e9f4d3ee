//! 802.1Q: an interface may be one VLAN of a physical port (`vlan = 100`), several sharing a
//! port. The runtime maps each frame it receives to its interface (stripping the tag) before
//! anything else looks at it, and each frame it sends back to its physical port (pushing the
//! interface's tag), so the pipeline only ever sees untagged frames and interface numbers.

use super::{DropReason, Frame};
use crate::net::Network;
use crate::wire::{EtherType, EthernetFrame};

/// Bytes of an 802.1Q tag (TPID and TCI).
const TAG: usize = 4;
/// Where the tag (or the EtherType) starts: after both MAC addresses.
const MACS: usize = 12;

/// Maps a frame received on its physical port (`f.in_port()`) to its interface: strips the
/// tag, if any, and sets `in_port` to the interface. Refused (VlanTagged) when no interface
/// has that VLAN on that port, or the frame has two tags (802.1ad).
pub fn vlan_ingress(net: &Network, f: &mut impl Frame) -> Result<u16, DropReason> {
    let phys = f.in_port();
    let Ok(e) = EthernetFrame::new_checked(f.data()) else { return Err(DropReason::L2Truncated) };
    let (tags, vlan) = (e.tag_count(), e.vlan_id());
    if tags > 1 {
        return Err(DropReason::VlanTagged);
    }
    let Some(port) = net.interface_of(phys, vlan) else { return Err(DropReason::VlanTagged) };
    if tags == 1 {
        let d = f.data_mut();
        d.copy_within(..MACS, TAG);
        f.adj(TAG);
    }
    f.set_in_port(port);
    Ok(port)
}

/// Prepares a frame for interface `port`: pushes the interface's tag, if it has one, and
/// returns the physical port to send it on; `None` without headroom for the tag.
pub fn vlan_egress(net: &Network, f: &mut impl Frame, port: u16) -> Option<u16> {
    let Some(p) = net.ports.get(usize::from(port)) else { return Some(port) };
    if let Some(vlan) = p.vlan {
        if f.data().len() < MACS + 2 || !f.prepend(TAG) {
            return None;
        }
        let d = f.data_mut();
        d.copy_within(TAG..TAG + MACS, 0);
        d[MACS..MACS + 2].copy_from_slice(&EtherType::VLAN.to_be_bytes());
        d[MACS + 2..MACS + 4].copy_from_slice(&(vlan & 0x0fff).to_be_bytes());
    }
    Some(p.phys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetworkModel;
    use crate::pipeline::VecFrame;
    use crate::wire::MacAddr;

    fn net() -> Network {
        let m: NetworkModel = toml::from_str(
            "[[interface]]\nname = \"a\"\ndevice = \"d0\"\naddresses = [\"10.0.0.1/24\"]\n\
             [[interface]]\nname = \"v100\"\ndevice = \"d1\"\nvlan = 100\naddresses = [\"10.1.0.1/24\"]\n\
             [[interface]]\nname = \"v200\"\ndevice = \"d1\"\nvlan = 200\naddresses = [\"10.2.0.1/24\"]\n",
        )
        .unwrap();
        Network::build(&m, &[MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]), MacAddr([2, 0, 0, 0, 0, 2])])
            .unwrap()
    }

    fn tagged(vlan: u16) -> Vec<u8> {
        let mut f = vec![0xaa; 12];
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&vlan.to_be_bytes());
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 20]);
        f
    }

    #[test]
    fn a_tag_names_the_interface_and_comes_off_then_back_on() {
        let n = net();
        assert!(n.has_vlans);
        let mut f = VecFrame::new(&tagged(200), 1);
        assert_eq!(vlan_ingress(&n, &mut f), Ok(2));
        assert_eq!(f.in_port(), 2);
        assert_eq!(f.data(), &[[0xaa; 12].as_slice(), &[0x08, 0x00, 0x45, 0, 0, 20]].concat()[..]);
        assert_eq!(vlan_egress(&n, &mut f, 2), Some(1), "sent on the device of v200");
        assert_eq!(f.data(), &tagged(200)[..]);
        // The untagged interface of device 0 stays untagged.
        let mut g = VecFrame::new(&[[0xaa; 12].as_slice(), &[0x08, 0x00, 0x45]].concat(), 0);
        assert_eq!(vlan_ingress(&n, &mut g), Ok(0));
        assert_eq!(vlan_egress(&n, &mut g, 0), Some(0));
        assert_eq!(g.data().len(), 15);
    }

    #[test]
    fn an_unknown_vlan_untagged_frames_on_a_trunk_and_double_tags_are_refused() {
        let n = net();
        assert_eq!(vlan_ingress(&n, &mut VecFrame::new(&tagged(300), 1)), Err(DropReason::VlanTagged));
        assert_eq!(vlan_ingress(&n, &mut VecFrame::new(&tagged(100), 0)), Err(DropReason::VlanTagged));
        let untagged = [[0xaa; 12].as_slice(), &[0x08, 0x00, 0x45]].concat();
        assert_eq!(vlan_ingress(&n, &mut VecFrame::new(&untagged, 1)), Err(DropReason::VlanTagged));
        let mut qinq = tagged(100);
        qinq.splice(12..12, [0x88, 0xa8, 0, 5]);
        assert_eq!(vlan_ingress(&n, &mut VecFrame::new(&qinq, 1)), Err(DropReason::VlanTagged));
    }

    #[test]
    fn two_interfaces_with_one_vlan_on_one_device_are_refused() {
        let m: NetworkModel = toml::from_str(
            "[[interface]]\nname = \"x\"\ndevice = \"d1\"\nvlan = 7\n[[interface]]\nname = \"y\"\ndevice = \"d1\"\nvlan = 7\n",
        )
        .unwrap();
        let e = Network::build(&m, &[MacAddr::ZERO, MacAddr::ZERO]).unwrap_err();
        assert!(e.0.contains("network.interface[1] (y).vlan: network.interface[0] (x) is already VLAN 7"), "{e}");
        let m: NetworkModel = toml::from_str("[[interface]]\nname = \"x\"\nvlan = 4095\n").unwrap();
        assert!(Network::build(&m, &[MacAddr::ZERO]).unwrap_err().0.contains("4095 is not a VLAN id"));
    }
}
