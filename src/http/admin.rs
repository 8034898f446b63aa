//! The operator (admin) HTTP router: API key check, routes onto [`super::operator::OperatorApi`].
