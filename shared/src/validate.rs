//! Field validation shared by the web form, the JSON API and (later) the hub's checks of incoming changes.
//!
//! Everything here is pure: the caller passes "today" in, so the same rules give the same answer on a
//! village PC, at the hub and in the simulator. Error messages are Chinese sentences that name the field,
//! because they are shown to agents as they are.

use chrono::NaiveDate;

/// One invalid field: `field` is the JSON path (`applicant.id_number`), `message` a Chinese sentence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a resident ID number (GB 11643) is not acceptable; the variants exist so that the form can give
/// the agent a precise hint (most real errors are a mistyped digit, which only the checksum catches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdNumberProblem {
    Length,
    Characters,
    BirthDate,
    Checksum,
}

impl IdNumberProblem {
    pub fn message(self) -> &'static str {
        match self {
            IdNumberProblem::Length => "身份证号码应为18位，请核对后重新输入。",
            IdNumberProblem::Characters => "身份证号码前17位应为数字，最后一位为数字或X。",
            IdNumberProblem::BirthDate => "身份证号码中的出生日期不是真实的日期，请核对。",
            IdNumberProblem::Checksum => "身份证号码校验位不正确，可能有数字输错，请逐位核对。",
        }
    }
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Normalises (trims, upper-cases a final x) and checks an 18-digit resident ID number: all digits but
/// the last, a real birth date not after `today`, and the ISO 7064 MOD 11-2 check character.
pub fn check_id_number(raw: &str, today: NaiveDate) -> Result<String, IdNumberProblem> {
    let id = raw.trim().to_ascii_uppercase();
    let bytes = id.as_bytes();
    if id.chars().count() != 18 {
        return Err(IdNumberProblem::Length);
    }
    if !bytes[..17].iter().all(u8::is_ascii_digit)
        || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
    {
        return Err(IdNumberProblem::Characters);
    }
    let birth = &id[6..14];
    let (year, month, day) = (
        birth[0..4]
            .parse::<i32>()
            .map_err(|_| IdNumberProblem::BirthDate)?,
        birth[4..6]
            .parse::<u32>()
            .map_err(|_| IdNumberProblem::BirthDate)?,
        birth[6..8]
            .parse::<u32>()
            .map_err(|_| IdNumberProblem::BirthDate)?,
    );
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) if date <= today && year >= 1880 => {}
        _ => return Err(IdNumberProblem::BirthDate),
    }
    let sum: u32 = bytes[..17]
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    if ID_CHECK[(sum % 11) as usize] != bytes[17] {
        return Err(IdNumberProblem::Checksum);
    }
    Ok(id)
}

/// Completes 17 digits with their check character: for generating sample and test data.
pub fn id_with_check_char(first17: &str) -> Option<String> {
    if first17.len() != 17 || !first17.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = first17
        .bytes()
        .zip(ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Some(format!(
        "{first17}{}",
        ID_CHECK[(sum % 11) as usize] as char
    ))
}

const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Why a unified social credit code (GB 32100) is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditCodeProblem {
    Length,
    Characters,
    Checksum,
}

impl CreditCodeProblem {
    pub fn message(self) -> &'static str {
        match self {
            CreditCodeProblem::Length => "统一社会信用代码应为18位，请核对。",
            CreditCodeProblem::Characters => {
                "统一社会信用代码只能包含数字和大写字母（不含I、O、Z、S、V），请核对。"
            }
            CreditCodeProblem::Checksum => {
                "统一社会信用代码校验位不正确，可能有字符输错，请逐位核对。"
            }
        }
    }
}

/// Normalises (trims, upper-cases) and checks an 18-character unified social credit code.
pub fn check_credit_code(raw: &str) -> Result<String, CreditCodeProblem> {
    let code = raw.trim().to_ascii_uppercase();
    if code.chars().count() != 18 {
        return Err(CreditCodeProblem::Length);
    }
    let mut values = [0u32; 18];
    for (slot, b) in values.iter_mut().zip(code.bytes()) {
        *slot = USCC_CHARSET
            .iter()
            .position(|c| *c == b)
            .ok_or(CreditCodeProblem::Characters)? as u32;
    }
    let sum: u32 = values[..17]
        .iter()
        .zip(USCC_WEIGHTS)
        .map(|(v, w)| v * w)
        .sum();
    let check = (31 - sum % 31) % 31;
    if values[17] != check {
        return Err(CreditCodeProblem::Checksum);
    }
    Ok(code)
}

/// Mainland mobile number: 11 digits starting with 1. Spaces and dashes that people type are removed.
pub fn check_mobile(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    (digits.len() == 11 && digits.starts_with('1') && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

/// Administrative division code of a node: 6 digits (county), 9 (township) or 12 (village).
pub fn check_division_code(raw: &str) -> Result<crate::Tier, String> {
    if !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("区划代码“{raw}”只能包含数字。"));
    }
    match raw.len() {
        6 => Ok(crate::Tier::County),
        9 => Ok(crate::Tier::Township),
        12 => Ok(crate::Tier::Village),
        n => Err(format!(
            "区划代码“{raw}”有{n}位：县级应为6位，乡镇9位，村（社区）12位。"
        )),
    }
}

/// A name a person types (applicant, legal representative): not blank and not absurdly long.
pub fn check_person_name(raw: &str, field: &str, label: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new(field, format!("请填写{label}。")));
    }
    if name.chars().count() > 50 {
        return Err(FieldError::new(field, format!("{label}不能超过50个字。")));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("{label}包含无法识别的字符。"),
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    fn with_check(first17: &str) -> String {
        id_with_check_char(first17).unwrap()
    }

    #[test]
    fn domain_example_id_is_valid_and_lower_x_accepted() {
        assert_eq!(
            check_id_number("11010519491231002X", today()).unwrap(),
            "11010519491231002X"
        );
        assert_eq!(
            check_id_number(" 11010519491231002x ", today()).unwrap(),
            "11010519491231002X"
        );
    }

    #[test]
    fn id_with_one_wrong_digit_fails_checksum() {
        assert_eq!(
            check_id_number("11010519491231003X", today()),
            Err(IdNumberProblem::Checksum)
        );
    }

    #[test]
    fn id_with_impossible_or_future_birth_date_is_refused() {
        let feb30 = with_check("42022219900230001");
        assert_eq!(
            check_id_number(&feb30, today()),
            Err(IdNumberProblem::BirthDate)
        );
        let future = with_check("42022220301201001");
        assert_eq!(
            check_id_number(&future, today()),
            Err(IdNumberProblem::BirthDate)
        );
        let leap = with_check("42022220000229001");
        assert!(check_id_number(&leap, today()).is_ok());
    }

    #[test]
    fn id_length_and_characters() {
        assert_eq!(
            check_id_number("1101051949123100", today()),
            Err(IdNumberProblem::Length)
        );
        assert_eq!(
            check_id_number("1101051949123100XX", today()),
            Err(IdNumberProblem::Characters)
        );
    }

    #[test]
    fn credit_code_example_valid_and_altered_invalid() {
        assert_eq!(
            check_credit_code("91350100M000100Y43").unwrap(),
            "91350100M000100Y43"
        );
        assert_eq!(
            check_credit_code("91350100M000100Y44"),
            Err(CreditCodeProblem::Checksum)
        );
        assert_eq!(
            check_credit_code("91350100I000100Y43"),
            Err(CreditCodeProblem::Characters)
        );
        assert_eq!(check_credit_code("9135"), Err(CreditCodeProblem::Length));
    }

    #[test]
    fn mobile_numbers() {
        assert_eq!(
            check_mobile("138 0027-1234").as_deref(),
            Some("13800271234")
        );
        assert_eq!(check_mobile("23800271234"), None);
        assert_eq!(check_mobile("1380027123"), None);
    }

    #[test]
    fn division_codes_give_tiers() {
        assert_eq!(check_division_code("420222"), Ok(crate::Tier::County));
        assert_eq!(check_division_code("420222103"), Ok(crate::Tier::Township));
        assert_eq!(
            check_division_code("420222103201"),
            Ok(crate::Tier::Village)
        );
        assert!(check_division_code("4202221032").is_err());
        assert!(check_division_code("42022a").is_err());
    }
}
