//! Enumerations and small value types of the out-of-band protocol: message
//! types, status codes, providers, persist methods and the errno values
//! librpmem maps statuses to.

use core::fmt;

/// Linux `errno` values used by the out-of-band protocol.
///
/// librpmem turns a response status into one of these (see
/// [`Status::errno`]); rpmemd sends one in its start-up status word when it
/// cannot start, and again as a trailing word when it fails mid-session.
/// The values are those of Linux on every architecture rpmem supports.
pub mod errno {
    /// No such file or directory.
    pub const ENOENT: u32 = 2;
    /// Permission denied.
    pub const EACCES: u32 = 13;
    /// Device or resource busy.
    pub const EBUSY: u32 = 16;
    /// File exists.
    pub const EEXIST: u32 = 17;
    /// Invalid argument.
    pub const EINVAL: u32 = 22;
    /// File too large.
    pub const EFBIG: u32 = 27;
    /// Protocol error.
    pub const EPROTO: u32 = 71;
    /// Protocol not supported.
    pub const EPROTONOSUPPORT: u32 = 93;
    /// Software caused connection abort.
    pub const ECONNABORTED: u32 = 103;
    /// Connection reset by peer.
    pub const ECONNRESET: u32 = 104;
    /// Remote I/O error.
    pub const EREMOTEIO: u32 = 121;
    /// Wrong medium type.
    pub const EMEDIUMTYPE: u32 = 124;

    /// The symbolic name and `strerror` text of the errno values rpmemd is
    /// likely to report, or `None` for any other value.
    pub fn describe(errno: u32) -> Option<(&'static str, &'static str)> {
        Some(match errno {
            1 => ("EPERM", "Operation not permitted"),
            ENOENT => ("ENOENT", "No such file or directory"),
            5 => ("EIO", "Input/output error"),
            9 => ("EBADF", "Bad file descriptor"),
            11 => ("EAGAIN", "Resource temporarily unavailable"),
            12 => ("ENOMEM", "Cannot allocate memory"),
            EACCES => ("EACCES", "Permission denied"),
            EBUSY => ("EBUSY", "Device or resource busy"),
            EEXIST => ("EEXIST", "File exists"),
            20 => ("ENOTDIR", "Not a directory"),
            21 => ("EISDIR", "Is a directory"),
            EINVAL => ("EINVAL", "Invalid argument"),
            24 => ("EMFILE", "Too many open files"),
            EFBIG => ("EFBIG", "File too large"),
            28 => ("ENOSPC", "No space left on device"),
            30 => ("EROFS", "Read-only file system"),
            32 => ("EPIPE", "Broken pipe"),
            36 => ("ENAMETOOLONG", "File name too long"),
            EPROTO => ("EPROTO", "Protocol error"),
            EPROTONOSUPPORT => ("EPROTONOSUPPORT", "Protocol not supported"),
            95 => ("EOPNOTSUPP", "Operation not supported"),
            ECONNABORTED => ("ECONNABORTED", "Software caused connection abort"),
            ECONNRESET => ("ECONNRESET", "Connection reset by peer"),
            110 => ("ETIMEDOUT", "Connection timed out"),
            111 => ("ECONNREFUSED", "Connection refused"),
            EREMOTEIO => ("EREMOTEIO", "Remote I/O error"),
            123 => ("ENOMEDIUM", "No medium found"),
            EMEDIUMTYPE => ("EMEDIUMTYPE", "Wrong medium type"),
            _ => return None,
        })
    }
}

/// An errno value as rpmemd sends it, displayed with its name when known
/// (`errno 2 (ENOENT: No such file or directory)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub u32);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match errno::describe(self.0) {
            Some((name, text)) => write!(f, "errno {} ({}: {})", self.0, name, text),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// `enum rpmem_msg_type`: the type field of every message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    /// `RPMEM_MSG_TYPE_CREATE`: create a pool (client to rpmemd).
    Create = 1,
    /// `RPMEM_MSG_TYPE_CREATE_RESP`: answer to CREATE.
    CreateResp = 2,
    /// `RPMEM_MSG_TYPE_OPEN`: open a pool (client to rpmemd).
    Open = 3,
    /// `RPMEM_MSG_TYPE_OPEN_RESP`: answer to OPEN.
    OpenResp = 4,
    /// `RPMEM_MSG_TYPE_CLOSE`: close (and maybe remove) the pool.
    Close = 5,
    /// `RPMEM_MSG_TYPE_CLOSE_RESP`: answer to CLOSE.
    CloseResp = 6,
    /// `RPMEM_MSG_TYPE_SET_ATTR`: replace the pool attributes.
    SetAttr = 7,
    /// `RPMEM_MSG_TYPE_SET_ATTR_RESP`: answer to SET_ATTR.
    SetAttrResp = 8,
}

impl MsgType {
    /// The type for a wire value, `None` for values PMDK does not define.
    pub const fn from_u32(value: u32) -> Option<MsgType> {
        Some(match value {
            1 => MsgType::Create,
            2 => MsgType::CreateResp,
            3 => MsgType::Open,
            4 => MsgType::OpenResp,
            5 => MsgType::Close,
            6 => MsgType::CloseResp,
            7 => MsgType::SetAttr,
            8 => MsgType::SetAttrResp,
            _ => return None,
        })
    }

    /// The wire value.
    pub const fn to_u32(self) -> u32 {
        self as u32
    }

    /// The short name used in messages (`"CREATE"`, `"OPEN_RESP"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            MsgType::Create => "CREATE",
            MsgType::CreateResp => "CREATE_RESP",
            MsgType::Open => "OPEN",
            MsgType::OpenResp => "OPEN_RESP",
            MsgType::Close => "CLOSE",
            MsgType::CloseResp => "CLOSE_RESP",
            MsgType::SetAttr => "SET_ATTR",
            MsgType::SetAttrResp => "SET_ATTR_RESP",
        }
    }

    /// True for the four types a client sends.
    pub const fn is_request(self) -> bool {
        matches!(
            self,
            MsgType::Create | MsgType::Open | MsgType::Close | MsgType::SetAttr
        )
    }

    /// The response type answering this request type (`None` for a
    /// response type).
    pub const fn response(self) -> Option<MsgType> {
        match self {
            MsgType::Create => Some(MsgType::CreateResp),
            MsgType::Open => Some(MsgType::OpenResp),
            MsgType::Close => Some(MsgType::CloseResp),
            MsgType::SetAttr => Some(MsgType::SetAttrResp),
            _ => None,
        }
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `enum rpmem_err`: the status of a response.
///
/// [`Status::errno`] and [`Status::message`] are librpmem's translation
/// table (`rpmem_util.c`); the errno values are Linux's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// `RPMEM_SUCCESS`.
    Success = 0,
    /// `RPMEM_ERR_BADPROTO`: protocol version mismatch.
    BadProto = 1,
    /// `RPMEM_ERR_BADNAME`: invalid pool descriptor.
    BadName = 2,
    /// `RPMEM_ERR_BADSIZE`: invalid (too large) pool size.
    BadSize = 3,
    /// `RPMEM_ERR_BADNLANES`: invalid number of lanes.
    BadNlanes = 4,
    /// `RPMEM_ERR_BADPROVIDER`: invalid provider.
    BadProvider = 5,
    /// `RPMEM_ERR_FATAL`: any other failure.
    Fatal = 6,
    /// `RPMEM_ERR_FATAL_CONN`: the in-band connection could not be set up.
    FatalConn = 7,
    /// `RPMEM_ERR_BUSY`: the pool is in use.
    Busy = 8,
    /// `RPMEM_ERR_EXISTS`: the pool already exists.
    Exists = 9,
    /// `RPMEM_ERR_PROVNOSUP`: the provider is not supported by rpmemd.
    ProvNoSup = 10,
    /// `RPMEM_ERR_NOEXIST`: the pool set or one of its parts does not exist.
    NoExist = 11,
    /// `RPMEM_ERR_NOACCESS`: permission denied on the pool set.
    NoAccess = 12,
    /// `RPMEM_ERR_POOL_CFG`: invalid pool set configuration.
    PoolCfg = 13,
}

/// Number of defined statuses (`MAX_RPMEM_ERR`); a larger wire value is a
/// protocol error.
pub const STATUS_COUNT: u32 = 14;

impl Status {
    /// Every status, in wire order.
    pub const ALL: [Status; 14] = [
        Status::Success,
        Status::BadProto,
        Status::BadName,
        Status::BadSize,
        Status::BadNlanes,
        Status::BadProvider,
        Status::Fatal,
        Status::FatalConn,
        Status::Busy,
        Status::Exists,
        Status::ProvNoSup,
        Status::NoExist,
        Status::NoAccess,
        Status::PoolCfg,
    ];

    /// The status for a wire value, `None` for `>= MAX_RPMEM_ERR`.
    pub fn from_u32(value: u32) -> Option<Status> {
        let index = usize::try_from(value).ok()?;
        Self::ALL.get(index).copied()
    }

    /// The wire value.
    pub const fn to_u32(self) -> u32 {
        self as u32
    }

    /// True for `RPMEM_SUCCESS`.
    pub const fn is_success(self) -> bool {
        matches!(self, Status::Success)
    }

    /// The C name (`"RPMEM_ERR_NOEXIST"`).
    pub const fn name(self) -> &'static str {
        match self {
            Status::Success => "RPMEM_SUCCESS",
            Status::BadProto => "RPMEM_ERR_BADPROTO",
            Status::BadName => "RPMEM_ERR_BADNAME",
            Status::BadSize => "RPMEM_ERR_BADSIZE",
            Status::BadNlanes => "RPMEM_ERR_BADNLANES",
            Status::BadProvider => "RPMEM_ERR_BADPROVIDER",
            Status::Fatal => "RPMEM_ERR_FATAL",
            Status::FatalConn => "RPMEM_ERR_FATAL_CONN",
            Status::Busy => "RPMEM_ERR_BUSY",
            Status::Exists => "RPMEM_ERR_EXISTS",
            Status::ProvNoSup => "RPMEM_ERR_PROVNOSUP",
            Status::NoExist => "RPMEM_ERR_NOEXIST",
            Status::NoAccess => "RPMEM_ERR_NOACCESS",
            Status::PoolCfg => "RPMEM_ERR_POOL_CFG",
        }
    }

    /// The errno librpmem sets for this status (0 for success).
    pub const fn errno(self) -> u32 {
        match self {
            Status::Success => 0,
            Status::BadProto => errno::EPROTONOSUPPORT,
            Status::BadName => errno::EINVAL,
            Status::BadSize => errno::EFBIG,
            Status::BadNlanes => errno::EINVAL,
            Status::BadProvider => errno::EINVAL,
            Status::Fatal => errno::EREMOTEIO,
            Status::FatalConn => errno::ECONNABORTED,
            Status::Busy => errno::EBUSY,
            Status::Exists => errno::EEXIST,
            Status::ProvNoSup => errno::EMEDIUMTYPE,
            Status::NoExist => errno::ENOENT,
            Status::NoAccess => errno::EACCES,
            Status::PoolCfg => errno::EINVAL,
        }
    }

    /// librpmem's message for this status.
    pub const fn message(self) -> &'static str {
        match self {
            Status::Success => "Success",
            Status::BadProto => "Protocol version number mismatch",
            Status::BadName => "Invalid pool descriptor",
            Status::BadSize => "Invalid pool size",
            Status::BadNlanes => "Invalid number of lanes",
            Status::BadProvider => "Invalid provider",
            Status::Fatal => "Fatal error",
            Status::FatalConn => "Fatal in-band connection error",
            Status::Busy => "Pool already in use",
            Status::Exists => "Pool already exists",
            Status::ProvNoSup => "Provider not supported",
            Status::NoExist => "Pool set or its part doesn't exist or it is unavailable",
            Status::NoAccess => "Pool set permission denied",
            Status::PoolCfg => "Invalid pool set configuration",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.message())
    }
}

/// `enum rpmem_provider`, plus the two providers of our own data paths.
///
/// Kept as an open newtype so that any wire value can be represented (a
/// request with an unknown provider must be answered, not dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Provider(pub u32);

impl Provider {
    /// `RPMEM_PROV_UNKNOWN`: never valid in a request.
    pub const UNKNOWN: Provider = Provider(0);
    /// `RPMEM_PROV_LIBFABRIC_VERBS`.
    pub const LIBFABRIC_VERBS: Provider = Provider(1);
    /// `RPMEM_PROV_LIBFABRIC_SOCKETS`.
    pub const LIBFABRIC_SOCKETS: Provider = Provider(2);
    /// Our TCP data path (not in PMDK); its responses carry `rpmem_msg_ext`.
    pub const TCP: Provider = Provider(0x5250_0001);
    /// Our native ibverbs data path (not in PMDK); its responses carry
    /// `rpmem_msg_ext`.
    pub const VERBS: Provider = Provider(0x5250_0002);

    /// True for the four providers this implementation knows.
    pub const fn is_known(self) -> bool {
        matches!(self.0, 1 | 2 | 0x5250_0001 | 0x5250_0002)
    }

    /// True for PMDK's own providers (libfabric verbs and sockets).
    pub const fn is_pmdk(self) -> bool {
        matches!(self.0, 1 | 2)
    }

    /// True for our providers, whose successful CREATE_RESP / OPEN_RESP
    /// carry the extension block.
    pub const fn has_extension(self) -> bool {
        matches!(self.0, 0x5250_0001 | 0x5250_0002)
    }

    /// A short name (`"verbs"`, `"sockets"`, `"tcp"`, `"rpmem-verbs"`),
    /// `None` for an unknown value.
    pub const fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("unknown"),
            1 => Some("verbs"),
            2 => Some("sockets"),
            0x5250_0001 => Some("tcp"),
            0x5250_0002 => Some("rpmem-verbs"),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({:#x})", name, self.0),
            None => write!(f, "{:#x}", self.0),
        }
    }
}

/// `enum rpmem_persist_method`, as an open newtype (error responses carry 0,
/// which is also the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PersistMethod(pub u32);

impl PersistMethod {
    /// `RPMEM_PM_GPSPM`: General Purpose Server Persistency Method.
    pub const GPSPM: PersistMethod = PersistMethod(1);
    /// `RPMEM_PM_APM`: Appliance Persistency Method.
    pub const APM: PersistMethod = PersistMethod(2);

    /// True for GPSPM and APM, the only values librpmem accepts.
    pub const fn is_known(self) -> bool {
        matches!(self.0, 1 | 2)
    }
}

impl fmt::Display for PersistMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("GPSPM"),
            2 => f.write_str("APM"),
            other => write!(f, "unknown persist method {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_type_round_trips_and_rejects_out_of_range() {
        for v in 1..=8 {
            let t = MsgType::from_u32(v).expect("defined");
            assert_eq!(t.to_u32(), v);
        }
        assert_eq!(MsgType::from_u32(0), None);
        assert_eq!(MsgType::from_u32(9), None);
        assert_eq!(MsgType::Create.response(), Some(MsgType::CreateResp));
        assert_eq!(MsgType::CreateResp.response(), None);
    }

    #[test]
    fn status_table_matches_librpmem() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(s.to_u32() as usize, i);
            assert_eq!(Status::from_u32(i as u32), Some(*s));
        }
        assert_eq!(Status::from_u32(14), None);
        assert_eq!(Status::BadProto.errno(), 93);
        assert_eq!(Status::BadSize.errno(), 27);
        assert_eq!(Status::Fatal.errno(), 121);
        assert_eq!(Status::ProvNoSup.errno(), 124);
        assert_eq!(Status::NoExist.errno(), 2);
        assert_eq!(Status::NoExist.name(), "RPMEM_ERR_NOEXIST");
        assert_eq!(Status::Exists.message(), "Pool already exists");
    }

    #[test]
    fn providers() {
        assert!(Provider::TCP.has_extension() && Provider::VERBS.has_extension());
        assert!(!Provider::LIBFABRIC_SOCKETS.has_extension());
        assert!(!Provider::UNKNOWN.is_known());
        assert!(!Provider(3).is_known());
        assert!(PersistMethod::APM.is_known() && !PersistMethod(0).is_known());
    }
}
